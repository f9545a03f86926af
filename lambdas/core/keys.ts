import { randomUUID } from 'node:crypto';
import { type CryptoKey, exportJWK, generateKeyPair, importJWK, type JWK } from 'jose';
import { AppError } from './errors.ts';

export const TOKEN_ALG = 'EdDSA';

export interface SigningKey {
  readonly kid: string;
  readonly privateKey: CryptoKey;
}

/** Where keys come from: a file locally (local/key-file.ts), Secrets Manager on AWS (lambdas/aws/key-source.ts). */
export interface KeySource {
  /** The current private key. Only token-issuing functions are given a source that has one. */
  signingKey(): Promise<SigningKey>;
  /** Every public key that may still verify a token, current first. */
  publicKeys(): Promise<readonly JWK[]>;
}

/** A stored key pair, as kept in the local key file and in the AWS secret. */
export interface StoredKey {
  kid: string;
  createdAt: string;
  privateJwk: JWK;
}

export interface StoredKeySet {
  /** The first signs; all verify (on AWS: current, the next one published ahead of rotation, then retired ones). */
  keys: StoredKey[];
}

export async function generateStoredKey(now: Date): Promise<StoredKey> {
  const { privateKey } = await generateKeyPair(TOKEN_ALG, { crv: 'Ed25519', extractable: true });
  const privateJwk = await exportJWK(privateKey);
  return {
    kid: `${now.toISOString().slice(0, 10)}-${randomUUID().slice(0, 8)}`,
    createdAt: now.toISOString(),
    privateJwk,
  };
}

/** The public half of a stored private JWK: only the public members survive. */
export function publicJwkOf(key: StoredKey): JWK {
  const { kty, crv, x } = key.privateJwk;
  if (kty !== 'OKP' || crv !== 'Ed25519' || typeof x !== 'string')
    throw new Error(`key ${key.kid} is not an Ed25519 key`);
  return { kty, crv, x, kid: key.kid, alg: TOKEN_ALG, use: 'sig' };
}

export function parseStoredKeySet(text: string): StoredKeySet {
  const parsed = JSON.parse(text) as unknown;
  const keys = (parsed as { keys?: unknown }).keys;
  if (!Array.isArray(keys) || keys.length === 0) throw new Error('key set has no keys');
  for (const k of keys as StoredKey[]) {
    if (typeof k?.kid !== 'string' || typeof k.privateJwk !== 'object' || k.privateJwk === null) {
      throw new Error('key set entry is malformed');
    }
    publicJwkOf(k);
  }
  return { keys: keys as StoredKey[] };
}

/** A key source over a key set held in memory, loaded once by `load` (cached per container). */
export function keySetSource(load: () => Promise<StoredKeySet>): KeySource {
  let loaded: Promise<{ signing: SigningKey; publics: JWK[] }> | undefined;
  const get = () => {
    loaded ??= (async () => {
      const set = await load();
      const first = set.keys[0];
      if (!first) throw new Error('key set has no keys');
      const privateKey = (await importJWK({ ...first.privateJwk, alg: TOKEN_ALG }, TOKEN_ALG)) as CryptoKey;
      return { signing: { kid: first.kid, privateKey }, publics: set.keys.map(publicJwkOf) };
    })().catch((err: unknown) => {
      loaded = undefined; // retry on the next call instead of caching the failure
      throw new AppError('unavailable', 'signing keys are unavailable', { cause: err });
    });
    return loaded;
  };
  return {
    signingKey: async () => (await get()).signing,
    publicKeys: async () => (await get()).publics,
  };
}

/** A source that only verifies: for functions that must never hold the private key. */
export function publicOnly(source: KeySource): KeySource {
  return {
    signingKey: () => Promise.reject(new AppError('internal', 'this function cannot sign tokens')),
    publicKeys: () => source.publicKeys(),
  };
}
