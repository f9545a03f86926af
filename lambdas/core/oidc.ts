import { createHash, randomBytes } from 'node:crypto';
import { PutItemCommand } from '@aws-sdk/client-dynamodb';
import { createRemoteJWKSet, errors, type JWTPayload, jwtVerify } from 'jose';
import { accessDenial, readAccessState } from './access.ts';
import { issueTokenPair, type TokenPair } from './auth.ts';
import type { Deps } from './deps.ts';
import { AppError } from './errors.ts';
import { isConditionFailure, N, S, storeCall } from './store.ts';
import { createExternalUser, normalizeUsername, userByExternalId } from './users.ts';

/** ID tokens are signed with the issuer's asymmetric keys; never an HMAC, never `none`. */
const ID_TOKEN_ALGS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
];
const MAX_ID_TOKEN_LENGTH = 16 * 1024;

type KeyLookup = ReturnType<typeof createRemoteJWKSet>;
let issuerKeys: { issuer: string; keys: Promise<KeyLookup> } | undefined;

/**
 * The issuer's signing keys, from its discovery document (cached per container; jose
 * caches the JWKS and refetches on an unknown `kid`). The document must name the
 * configured issuer exactly.
 */
function keysOf(issuer: string): Promise<KeyLookup> {
  if (issuerKeys?.issuer !== issuer) {
    const keys = (async () => {
      const res = await fetch(`${issuer}/.well-known/openid-configuration`, {
        signal: AbortSignal.timeout(5000),
      });
      if (!res.ok) throw new Error(`discovery answered ${res.status}`);
      const doc = (await res.json()) as { issuer?: unknown; jwks_uri?: unknown };
      if (doc.issuer !== issuer || typeof doc.jwks_uri !== 'string')
        throw new Error('discovery document does not match the issuer');
      return createRemoteJWKSet(new URL(doc.jwks_uri), { timeoutDuration: 5000 });
    })();
    keys.catch(() => {
      issuerKeys = undefined; // retry discovery on the next call
    });
    issuerKeys = { issuer, keys };
  }
  return issuerKeys.keys;
}

async function verifyIdToken(deps: Deps, idToken: unknown): Promise<JWTPayload & { sub: string }> {
  const { oidcIssuer, oidcAudience, clockSkewS } = deps.settings;
  if (!oidcIssuer || !oidcAudience) throw new AppError('not_found', 'no OIDC issuer is configured');
  if (
    typeof idToken !== 'string' ||
    idToken.length > MAX_ID_TOKEN_LENGTH ||
    !/^[\w-]+\.[\w-]+\.[\w-]+$/.test(idToken)
  ) {
    throw new AppError('invalid_token', 'the ID token is missing or malformed');
  }
  let keys: KeyLookup;
  try {
    keys = await keysOf(oidcIssuer);
  } catch (err) {
    throw new AppError('unavailable', 'the OIDC issuer is unavailable', { cause: err });
  }
  try {
    const { payload } = await jwtVerify(idToken, keys, {
      algorithms: ID_TOKEN_ALGS,
      issuer: oidcIssuer,
      audience: oidcAudience,
      requiredClaims: ['exp', 'iat', 'sub'],
      clockTolerance: clockSkewS,
      currentDate: new Date(deps.clock.now()),
    });
    if (typeof payload.sub !== 'string' || payload.sub.length === 0 || payload.sub.length > 255)
      throw new Error('bad sub');
    // jose only checks that iat is a number: a token "issued" in the future is refused here.
    if (typeof payload.iat !== 'number' || payload.iat > Math.floor(deps.clock.now() / 1000) + clockSkewS)
      throw new Error('iat in the future');
    return payload as JWTPayload & { sub: string };
  } catch (err) {
    if (err instanceof errors.JWKSTimeout)
      throw new AppError('unavailable', 'the OIDC issuer is unavailable', { cause: err });
    throw new AppError('invalid_token', 'the ID token is not valid', { cause: err });
  }
}

/**
 * Marks an ID token exchanged until it expires; throws `invalid_token` when it already was. Keyed by a hash of the issuer and its `jti`, or without one of its signed
 * part (header and payload): the signature itself is left out, since a signature can be
 * re-encoded without changing what it signs. One conditional put, so of two racing
 * exchanges of one token exactly one wins.
 */
async function spendIdToken(deps: Deps, idToken: string, claims: JWTPayload): Promise<void> {
  const signed = idToken.slice(0, idToken.lastIndexOf('.'));
  const name = typeof claims.jti === 'string' && claims.jti !== '' ? `jti|${claims.jti}` : `jws|${signed}`;
  const id = `idtoken#${createHash('sha256').update(`${deps.settings.oidcIssuer}|${name}`).digest('base64url')}`;
  const now = Math.floor(deps.clock.now() / 1000);
  try {
    await storeCall(
      'spend id token',
      (db) =>
        db.send(
          new PutItemCommand({
            TableName: deps.tables.revoked,
            Item: { id: S(id), expiresAt: N((claims.exp ?? now) + deps.settings.clockSkewS + 1) },
            // A row past its expiry (DynamoDB deletes late, dynalite never) no longer counts.
            ConditionExpression: 'attribute_not_exists(id) OR expiresAt <= :now',
            ExpressionAttributeValues: { ':now': N(now) },
          }),
        ),
      deps.db,
    );
  } catch (err) {
    if (isConditionFailure(err))
      throw new AppError('invalid_token', 'the ID token has already been exchanged');
    throw err;
  }
}

/**
 * Exchanges an ID token of the configured OIDC issuer for our token pair. The local
 * user is keyed by issuer and subject and created on the first exchange, named after a
 * valid, free `preferred_username`, else a generated name.
 */
export async function exchangeIdToken(
  deps: Deps,
  body: Record<string, unknown>,
  ip: string | undefined,
): Promise<TokenPair> {
  const claims = await verifyIdToken(deps, body.id_token);
  await spendIdToken(deps, String(body.id_token), claims);
  const externalId = `${deps.settings.oidcIssuer}|${claims.sub}`;
  let user = await userByExternalId(deps, externalId);
  if (!user) {
    const preferred = normalizeUsername(claims.preferred_username);
    user = preferred ? await createExternalUser(deps, preferred, externalId) : undefined;
    for (let attempt = 0; !user && attempt < 5; attempt++) {
      user = await createExternalUser(deps, `user-${randomBytes(5).toString('hex')}`, externalId);
    }
    if (!user) throw new AppError('internal', 'could not name the new user');
    deps.audit('info', 'auth.register', { username: user.username, sub: user.sub, ip, reason: 'oidc' });
  }
  const denial = accessDenial(await readAccessState(deps, { username: user.username, ip }));
  if (denial) throw denial;
  const pair = await issueTokenPair(deps, user);
  deps.audit('info', 'auth.token_exchange', { username: user.username, sub: user.sub, ip });
  return pair;
}
