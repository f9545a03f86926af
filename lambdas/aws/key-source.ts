import type { JWK } from 'jose';
import { AppError } from '../core/errors.ts';
import { type KeySource, keySetSource, parseStoredKeySet, publicOnly, TOKEN_ALG } from '../core/keys.ts';
import { type SecretReader, secretReaderFromEnv } from './secrets.ts';

/** How long a container trusts its cached keys before re-reading them, so rotations reach it. */
const KEY_CACHE_MS = 10 * 60 * 1000;

function cached(make: () => KeySource): KeySource {
  let source = make();
  let loadedAt = Date.now();
  const current = () => {
    if (Date.now() - loadedAt > KEY_CACHE_MS) {
      source = make();
      loadedAt = Date.now();
    }
    return source;
  };
  return { signingKey: () => current().signingKey(), publicKeys: () => current().publicKeys() };
}

function parsePublicSet(text: string): JWK[] {
  const keys = (JSON.parse(text) as { keys?: unknown }).keys;
  if (!Array.isArray(keys) || keys.length === 0) throw new Error('public key set is empty');
  return (keys as JWK[]).map(({ kty, crv, x, kid }) => {
    if (kty !== 'OKP' || crv !== 'Ed25519' || typeof x !== 'string' || typeof kid !== 'string') {
      throw new Error('public key set entry is malformed');
    }
    return { kty, crv, x, kid, alg: TOKEN_ALG, use: 'sig' };
  });
}

const noKeys: KeySource = {
  signingKey: () => Promise.reject(new AppError('internal', 'this function holds no keys')),
  publicKeys: () => Promise.reject(new AppError('internal', 'this function holds no keys')),
};

/**
 * Keys on AWS, from Secrets Manager. Token-issuing functions get `SIGNING_KEYS_SECRET_ARN`
 * (the private key set, readable by them alone); every other function gets
 * `PUBLIC_KEYS_SECRET_ARN` (public keys only) and can never sign.
 */
export function awsKeySource(
  env: NodeJS.ProcessEnv,
  readSecret: SecretReader = secretReaderFromEnv(env),
): KeySource {
  const signing = env.SIGNING_KEYS_SECRET_ARN;
  if (signing) return cached(() => keySetSource(async () => parseStoredKeySet(await readSecret(signing))));
  const publicArn = env.PUBLIC_KEYS_SECRET_ARN;
  // Functions that touch no token (register, $connect, $disconnect, the sweeper) get no key at all.
  if (!publicArn) return noKeys;
  return cached(() => {
    let loaded: Promise<JWK[]> | undefined;
    return publicOnly({
      signingKey: () => Promise.reject(new AppError('internal', 'this function cannot sign tokens')),
      publicKeys: () => {
        loaded ??= readSecret(publicArn)
          .then(parsePublicSet)
          .catch((err: unknown) => {
            loaded = undefined;
            throw new AppError('unavailable', 'verification keys are unavailable', { cause: err });
          });
        return loaded;
      },
    });
  });
}
