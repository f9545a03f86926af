import {
  accessDenial,
  accessRefs,
  accessStateFrom,
  readAccessState,
  revokeAccessToken,
  revokedBefore,
  revokedId,
  revokeSidTokens,
} from './access.ts';
import { nowS } from './clock.ts';
import type { Deps } from './deps.ts';
import { AppError } from './errors.ts';
import { createSession, type RotateOutcome, revokeSession, rotateSession, type Session } from './sessions.ts';
import { closeSessionSockets } from './sockets.ts';
import { batchGet, type Item, isLive, S } from './store.ts';
import type { TokenPair } from './token-pair.ts';
import { type AccessClaims, BEARER, issueAccessToken, verifyAccessToken } from './tokens.ts';
import { type User, userFromItem, userKey } from './users.ts';

export type { TokenPair };

/** Where an HTTP request came from (not who made it: that is its token's claims). */
export interface RequestSource {
  /** Source IP (normalized), when known. */
  readonly ip: string | undefined;
}

/** Issues an access token and the first refresh token of a new family. */
export async function issueTokenPair(
  deps: Deps,
  user: { sub: string; username: string; roles: readonly string[] },
): Promise<TokenPair> {
  const { session, refreshToken } = await createSession(deps, user);
  return signedPair(deps, user, session, refreshToken);
}

/** Signs an access token for the user in the session, and answers it with the session's refresh token. */
async function signedPair(
  deps: Deps,
  user: { sub: string; username: string; roles: readonly string[] },
  session: Pick<Session, 'sid' | 'messageKey'>,
  refreshToken: string,
): Promise<TokenPair> {
  const { token } = await issueAccessToken(deps, {
    sub: user.sub,
    username: user.username,
    roles: user.roles,
    sid: session.sid,
  });
  return tokenPair(deps, token, refreshToken, session.messageKey);
}

/** The body of a token pair: what login, refresh and token exchange answer. */
function tokenPair(
  deps: Pick<Deps, 'settings'>,
  accessToken: string,
  refreshToken: string,
  messageKey: string | undefined,
): TokenPair {
  return {
    access_token: accessToken,
    token_type: 'Bearer',
    expires_in: deps.settings.accessTokenTtlS,
    refresh_token: refreshToken,
    ...(messageKey ? { message_key: messageKey } : {}),
  };
}

/**
 * Spends a refresh token for a new pair. A spent token presented again revokes its
 * whole family, the family's access tokens included, and closes its sockets.
 */
export async function refresh(
  deps: Deps,
  body: Record<string, unknown>,
  source: RequestSource,
): Promise<TokenPair> {
  const outcome = await rotateWithReads(deps, body.refresh_token, source);
  if (outcome.kind === 'reused') return endReusedFamily(deps, outcome.session, source);
  const { session } = outcome;
  const user = await checkRefreshAllowed(deps, session, outcome.alongside, source);
  const pair = await signedPair(deps, user, session, outcome.refreshToken);
  deps.audit('info', 'auth.refresh', {
    username: user.username,
    sub: user.sub,
    sid: session.sid,
    ip: source.ip,
  });
  return pair;
}

/** The rotation, with the user, its revocation mark and its blocks read in the same round trip. */
function rotateWithReads(
  deps: Deps,
  refreshToken: unknown,
  source: RequestSource,
): Promise<RotateOutcome<(Item | undefined)[]>> {
  return rotateSession(deps, refreshToken, (session) =>
    batchGet(
      deps.db,
      [
        { table: deps.tables.users, key: userKey(session.username) },
        { table: deps.tables.revoked, key: { id: S(revokedId.user(session.sub)) } },
        ...accessRefs(deps, { username: session.username, ip: source.ip }),
      ],
      { consistent: true },
    ),
  );
}

/** A spent token came back: the family and its access tokens are revoked, its sockets closed. */
async function endReusedFamily(deps: Deps, session: Session, source: RequestSource): Promise<never> {
  await Promise.all([revokeSession(deps, session.sid), revokeSidTokens(deps, session.sid)]);
  deps.audit('warn', 'auth.refresh_reuse', {
    username: session.username,
    sub: session.sub,
    sid: session.sid,
    ip: source.ip,
    reason: 'spent_token_reused',
  });
  await closeSockets(deps, () => closeSessionSockets(deps, session.sid, 'token_revoked'));
  throw new AppError('invalid_token', 'the refresh token has already been used');
}

/**
 * The user must still exist as the one the session was issued to, not be revoked since, and
 * not be blocked (nor the address). Any of these ends the family, whose token is already spent.
 */
async function checkRefreshAllowed(
  deps: Deps,
  session: Session,
  alongside: (Item | undefined)[],
  source: RequestSource,
): Promise<User> {
  const access = { username: session.username, ip: source.ip };
  const now = nowS(deps.clock);
  const [userItem, userMark, ...accessRows] = alongside;
  const user = userItem ? userFromItem(userItem) : undefined;
  const revoked = revokedBefore(isLive(userMark, now) ? userMark : undefined, session.createdAt);
  if (!user || user.sub !== session.sub || revoked) {
    await revokeSession(deps, session.sid);
    throw new AppError('invalid_token', 'the session has been revoked');
  }
  const denial = accessDenial(accessStateFrom(access, accessRows, now));
  if (denial) {
    // The token is already spent: end the family, so a retry reads "revoked", not a reuse alarm.
    await revokeSession(deps, session.sid);
    throw denial;
  }
  return user;
}

/** Reads a bearer token from an `Authorization` header value (scheme case-insensitive). */
export function bearerToken(header: string | undefined): string {
  const m = header === undefined ? null : BEARER.exec(header);
  if (!m?.[1]) throw new AppError('invalid_token', 'a Bearer token is required');
  return m[1];
}

/**
 * Verifies a bearer access token and checks, in one round trip, that it is not revoked
 * and that its user is not blocked.
 */
export async function authenticate(deps: Deps, token: string): Promise<AccessClaims> {
  const claims = await verifyAccessToken(deps, token);
  // IP blocks bar logins and handshakes (the spec's reach), not calls with a valid
  // token: an operator behind a blocked address must still be able to lift the block.
  const denial = accessDenial(await readAccessState(deps, { claims }));
  if (denial) throw denial;
  return claims;
}

/** Revokes the access token and its refresh family, and closes every socket opened with them. */
export async function logout(deps: Deps, claims: AccessClaims, source: RequestSource): Promise<void> {
  await Promise.all([
    revokeAccessToken(deps, claims.jti, claims.exp),
    revokeSidTokens(deps, claims.sid),
    revokeSession(deps, claims.sid),
  ]);
  deps.audit('info', 'auth.logout', {
    username: claims.username,
    sub: claims.sub,
    sid: claims.sid,
    ip: source.ip,
  });
  deps.audit('info', 'token.revoked', {
    username: claims.username,
    sub: claims.sub,
    jti: claims.jti,
    sid: claims.sid,
    reason: 'logout',
  });
  await closeSockets(deps, () => closeSessionSockets(deps, claims.sid, 'token_revoked'));
}

/** Closing sockets is best effort after the revocation is stored: the sweeper closes what this misses. */
async function closeSockets(deps: Deps, close: () => Promise<number>): Promise<void> {
  try {
    await close();
  } catch (err) {
    deps.audit('error', 'error', { reason: 'close_sockets_failed', errorName: (err as Error).name });
  }
}

export function me(claims: AccessClaims): {
  sub: string;
  username: string;
  roles: readonly string[];
  exp: number;
} {
  return { sub: claims.sub, username: claims.username, roles: claims.roles, exp: claims.exp };
}
