import { randomUUID } from 'node:crypto';
import {
  type CryptoKey,
  createLocalJWKSet,
  errors,
  type FlattenedJWSInput,
  type JWK,
  type JWSHeaderParameters,
  type JWTPayload,
  jwtVerify,
  SignJWT,
} from 'jose';
import { type Clock, nowS } from './clock.ts';
import { AppError } from './errors.ts';
import { type KeySource, TOKEN_ALG } from './keys.ts';
import { ROLE_PATTERN } from './roles.ts';
import type { Settings } from './settings.ts';

export const ACCESS_TOKEN_TYP = 'at+jwt';
/** Longer input is refused before any parsing: our tokens are well under 1 KB. */
export const MAX_TOKEN_LENGTH = 4096;
/**
 * Three base64url parts and nothing else. jose decodes with atob on Node 20, which
 * ignores whitespace and padding: without this, altered strings of one token would verify.
 */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const ID_PATTERN = /^[A-Za-z0-9_.:-]{1,128}$/;
const USERNAME_PATTERN = /^[a-z0-9_.-]{1,64}$/;
/** An `Authorization` header carrying a bearer token (scheme case-insensitive); group 1 is the token. */
export const BEARER = /^Bearer[ ]+(\S+)\s*$/i;

/** What a verified access token tells us. */
export interface AccessClaims {
  readonly sub: string;
  readonly username: string;
  readonly roles: readonly string[];
  readonly jti: string;
  readonly sid: string;
  readonly iat: number;
  readonly exp: number;
}

export interface IssuedToken {
  readonly token: string;
  readonly claims: AccessClaims;
}

interface TokenDeps {
  readonly settings: Pick<Settings, 'tokenIssuer' | 'tokenAudience' | 'accessTokenTtlS' | 'clockSkewS'>;
  readonly keys: KeySource;
  readonly clock: Clock;
}

/** Signs an EdDSA access token with the spec's claims under the current `kid`. */
export async function issueAccessToken(
  deps: TokenDeps,
  subject: { sub: string; username: string; roles: readonly string[]; sid: string },
): Promise<IssuedToken> {
  const key = await deps.keys.signingKey();
  const iat = nowS(deps.clock);
  const claims: AccessClaims = {
    sub: subject.sub,
    username: subject.username,
    roles: [...subject.roles],
    sid: subject.sid,
    jti: randomUUID(),
    iat,
    exp: iat + deps.settings.accessTokenTtlS,
  };
  const token = await new SignJWT({ username: claims.username, roles: claims.roles, sid: claims.sid })
    .setProtectedHeader({ alg: TOKEN_ALG, kid: key.kid, typ: ACCESS_TOKEN_TYP })
    .setIssuer(deps.settings.tokenIssuer)
    .setAudience(deps.settings.tokenAudience)
    .setSubject(claims.sub)
    .setJti(claims.jti)
    .setIssuedAt(claims.iat)
    .setExpirationTime(claims.exp)
    .sign(key.privateKey);
  return { token, claims };
}

/**
 * Verifies an access token's signature and claims, pinned to EdDSA, our issuer and
 * audience, `typ: at+jwt`, the required claims and a maximum age, with `clockSkewS` of
 * tolerance. Revocation is checked separately (it needs the store). Every failure is an
 * AppError: `token_expired` for an expired token, `invalid_token` for anything else.
 *
 * @example const claims = await verifyAccessToken(deps, bearer)
 */
export async function verifyAccessToken(deps: TokenDeps, token: unknown): Promise<AccessClaims> {
  const payload = await verifySigned(deps, token, ACCESS_TOKEN_TYP, deps.settings.accessTokenTtlS);
  return claimsOf(payload);
}

/**
 * The one verification of our own JWTs: shape first (three base64url parts, at most
 * 4 KB), then jose pinned to EdDSA, our issuer and audience, the `typ`, the required
 * claims and a maximum age. Expiry is `token_expired`; every other failure, jose's
 * plain TypeErrors included, is `invalid_token`.
 */
async function verifySigned(
  deps: TokenDeps,
  token: unknown,
  typ: string,
  maxAgeS: number,
): Promise<JWTPayload> {
  if (typeof token !== 'string' || token.length > MAX_TOKEN_LENGTH || !COMPACT_JWS.test(token)) {
    throw new AppError('invalid_token', 'the token is missing or malformed');
  }
  try {
    const { payload } = await jwtVerify(token, verifierFor(await deps.keys.publicKeys()), {
      algorithms: [TOKEN_ALG],
      issuer: deps.settings.tokenIssuer,
      audience: deps.settings.tokenAudience,
      typ,
      requiredClaims: ['exp', 'iat', 'jti', 'sub', 'sid'],
      maxTokenAge: maxAgeS,
      clockTolerance: deps.settings.clockSkewS,
      currentDate: new Date(deps.clock.now()),
    });
    return payload;
  } catch (err) {
    if (err instanceof AppError) throw err;
    if (err instanceof errors.JWTExpired) throw new AppError('token_expired', 'the token has expired');
    throw new AppError('invalid_token', 'the token is not valid', { cause: err });
  }
}

// One verifier per key set (key sources return the same array until keys change), not per call.
type KeyLookup = (header: JWSHeaderParameters, token: FlattenedJWSInput) => Promise<CryptoKey>;
const verifiers = new WeakMap<readonly JWK[], KeyLookup>();
function verifierFor(keys: readonly JWK[]): KeyLookup {
  const cached = verifiers.get(keys);
  if (cached) return cached;
  const set = createLocalJWKSet({ keys: [...keys] });
  // Our tokens always name their key: without a kid jose would try every key of the set.
  const verifier: KeyLookup = (header, token) => {
    if (typeof header.kid !== 'string') throw new AppError('invalid_token', 'the token names no key');
    return set(header, token);
  };
  verifiers.set(keys, verifier);
  return verifier;
}

function claimsOf(payload: JWTPayload): AccessClaims {
  const { sub, jti, sid, username, roles, iat, exp } = payload as Record<string, unknown>;
  const ok =
    typeof sub === 'string' &&
    ID_PATTERN.test(sub) &&
    typeof jti === 'string' &&
    ID_PATTERN.test(jti) &&
    typeof sid === 'string' &&
    ID_PATTERN.test(sid) &&
    typeof username === 'string' &&
    USERNAME_PATTERN.test(username) &&
    Array.isArray(roles) &&
    roles.length <= 16 &&
    roles.every((r) => typeof r === 'string' && ROLE_PATTERN.test(r)) &&
    typeof iat === 'number' &&
    Number.isFinite(iat) &&
    typeof exp === 'number' &&
    Number.isFinite(exp);
  if (!ok) throw new AppError('invalid_token', 'the token is not valid');
  return { sub, jti, sid, username, roles: roles as string[], iat, exp };
}

export const TICKET_TYP = 'wst+jwt';
export const TICKET_TTL_S = 30;

/** A handshake ticket stands for one access token at one handshake, for 30 seconds. */
export interface TicketClaims extends AccessClaims {
  /** The ticket's own id (single use is enforced on it). */
  readonly ticketId: string;
}

/**
 * Issues a single-use ticket for a verified access token: a short-lived EdDSA JWT of
 * its own `typ`, so a ticket is never accepted as an access token nor the reverse.
 */
export async function issueTicket(
  deps: TokenDeps,
  access: AccessClaims,
): Promise<{ ticket: string; expiresIn: number }> {
  const key = await deps.keys.signingKey();
  const iat = nowS(deps.clock);
  const ticket = await new SignJWT({
    username: access.username,
    roles: [...access.roles],
    sid: access.sid,
    ati: access.jti,
    aiat: access.iat,
    aexp: access.exp,
  })
    .setProtectedHeader({ alg: TOKEN_ALG, kid: key.kid, typ: TICKET_TYP })
    .setIssuer(deps.settings.tokenIssuer)
    .setAudience(deps.settings.tokenAudience)
    .setSubject(access.sub)
    .setJti(randomUUID())
    .setIssuedAt(iat)
    .setExpirationTime(iat + Math.min(TICKET_TTL_S, access.exp - iat))
    .sign(key.privateKey);
  return { ticket, expiresIn: Math.min(TICKET_TTL_S, access.exp - iat) };
}

/** Verifies a ticket like an access token, pinned to the ticket `typ` and a 30-second age. */
export async function verifyTicket(deps: TokenDeps, ticket: unknown): Promise<TicketClaims> {
  const payload = await verifySigned(deps, ticket, TICKET_TYP, TICKET_TTL_S).catch((err: unknown) => {
    // A ticket past its 30 seconds is simply not valid; only the token it stands for can expire.
    if (err instanceof AppError && err.code === 'token_expired')
      throw new AppError('invalid_token', 'the ticket has expired');
    throw err;
  });
  const { ati, aiat, aexp, jti } = payload as Record<string, unknown>;
  if (
    typeof ati !== 'string' ||
    typeof aiat !== 'number' ||
    typeof aexp !== 'number' ||
    typeof jti !== 'string'
  ) {
    throw new AppError('invalid_token', 'the ticket is not valid');
  }
  const claims = claimsOf({ ...payload, jti: ati, iat: aiat, exp: aexp });
  if (!ID_PATTERN.test(jti)) throw new AppError('invalid_token', 'the ticket is not valid');
  if (claims.exp <= nowS(deps.clock) - deps.settings.clockSkewS)
    throw new AppError('token_expired', 'the token has expired');
  return { ...claims, ticketId: jti };
}
