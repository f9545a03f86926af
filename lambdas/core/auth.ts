import { DeleteItemCommand } from '@aws-sdk/client-dynamodb';
import {
  accessDenial,
  accessRefs,
  accessStateFrom,
  blockId,
  putBlock,
  readAccessState,
  revokeAccessToken,
  revokedId,
  revokeSidTokens,
} from './access.ts';
import { nowS } from './clock.ts';
import { counterId, incrementCounter, secondsLeft, windowAt } from './counters.ts';
import type { Deps } from './deps.ts';
import { AppError } from './errors.ts';
import { hashPassword, PASSWORD_MAX, validatePassword, verifyPassword } from './passwords.ts';
import { createSession, revokeSession, rotateSession } from './sessions.ts';
import { closeSessionSockets } from './sockets.ts';
import { batchGet, isLive, num, S, storeCall } from './store.ts';
import { type AccessClaims, issueAccessToken, verifyAccessToken } from './tokens.ts';
import { createUser, normalizeUsername, userFromItem, userKey } from './users.ts';

/** The body of a successful login, refresh or token exchange. */
export interface TokenPair {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
  refresh_token: string;
}

export interface Caller {
  /** Source IP (normalized), when known. */
  readonly ip: string | undefined;
}

/** Registers a user with the `user` role. */
export async function register(
  deps: Deps,
  body: Record<string, unknown>,
  caller: Caller,
): Promise<{ username: string }> {
  const username = normalizeUsername(body.username);
  if (!username) throw new AppError('invalid_request', 'username must be 3-32 of a-z, 0-9, _ . -');
  const password = validatePassword(body.password);
  if (caller.ip) {
    const state = await readAccessState(deps, { ip: caller.ip });
    const denial = accessDenial(state);
    if (denial) throw denial;
  }
  const user = await createUser(deps, { username, passwordHash: await hashPassword(password) });
  deps.audit('info', 'auth.register', { username, sub: user.sub, ip: caller.ip });
  return { username };
}

const loginScope = {
  user: (username: string) => `login#user#${username}`,
  ip: (ip: string) => `login#ip#${ip}`,
};
/** Failed logins and refused handshakes from one IP, for `ipBlockAfterFailures`. */
export const ipFailureScope = (ip: string) => `fail#ip#${ip}`;

/**
 * Checks a username and password. One round trip reads the user, both failure
 * counters and both blocks; an unknown user is checked against a dummy hash so it
 * costs the same as a wrong password and gets the same answer.
 */
export async function login(deps: Deps, body: Record<string, unknown>, caller: Caller): Promise<TokenPair> {
  if (typeof body.username !== 'string' || typeof body.password !== 'string') {
    throw new AppError('invalid_request', 'username and password are required strings');
  }
  const { settings, tables } = deps;
  const username = normalizeUsername(body.username) ?? '';
  const now = nowS(deps.clock);
  const window = windowAt(now, settings.loginFailureWindowS);
  const userScope = loginScope.user(username || '-');
  const ipScope = caller.ip ? loginScope.ip(caller.ip) : undefined;

  const access = { username: username || undefined, ip: caller.ip };
  const [userItem, userFailures, ipFailures, ...accessRows] = await batchGet(
    deps.db,
    [
      { table: tables.users, key: userKey(username || '-') },
      { table: tables.counters, key: { id: S(counterId(userScope, window)) } },
      { table: tables.counters, key: { id: S(counterId(ipScope ?? 'login#ip#-', window)) } },
      ...accessRefs(deps, access),
    ],
    { consistent: true },
  );
  const state = accessStateFrom(access, accessRows, now);
  if (state.ipBlock) {
    deps.audit('warn', 'auth.login_failed', { username, ip: caller.ip, reason: 'ip_blocked' });
    throw new AppError('forbidden', 'logins from this address are blocked');
  }
  const count = (item: typeof userFailures) => (isLive(item, now) ? (num(item, 'count') ?? 0) : 0);
  if (
    count(userFailures) >= settings.loginMaxFailures ||
    (ipScope && count(ipFailures) >= settings.loginMaxFailuresPerIp)
  ) {
    deps.audit('warn', 'auth.login_failed', { username, ip: caller.ip, reason: 'rate_limited' });
    throw new AppError('rate_limited', 'too many failed logins; try again later', {
      retryAfterS: secondsLeft(window, now),
    });
  }

  const user = userItem ? userFromItem(userItem) : undefined;
  const password = body.password.normalize('NFC');
  const ok = [...password].length <= PASSWORD_MAX && (await verifyPassword(user?.passwordHash, password));
  if (!ok || !user) {
    await recordLoginFailure(deps, { userScope, ipScope, ip: caller.ip, window });
    deps.audit('warn', 'auth.login_failed', {
      username,
      ip: caller.ip,
      reason: user ? 'bad_password' : 'unknown_user',
    });
    throw new AppError('invalid_credentials', 'invalid username or password');
  }
  if (state.userBlock) {
    deps.audit('warn', 'auth.login_failed', { username, ip: caller.ip, reason: 'blocked' });
    throw new AppError('forbidden', 'this user is blocked');
  }

  const [pair] = await Promise.all([
    issueTokenPair(deps, user),
    storeCall(
      'reset failures',
      (db) =>
        db.send(
          new DeleteItemCommand({ TableName: tables.counters, Key: { id: S(counterId(userScope, window)) } }),
        ),
      deps.db,
    ),
  ]);
  deps.audit('info', 'auth.login', { username, sub: user.sub, ip: caller.ip });
  return pair;
}

async function recordLoginFailure(
  deps: Deps,
  f: {
    userScope: string;
    ipScope: string | undefined;
    ip: string | undefined;
    window: ReturnType<typeof windowAt>;
  },
): Promise<void> {
  await Promise.all([
    incrementCounter(deps, f.userScope, f.window),
    f.ipScope ? incrementCounter(deps, f.ipScope, f.window) : undefined,
    f.ip ? recordIpFailure(deps, f.ip, 'login_failures') : undefined,
  ]);
}

/**
 * Counts a failure against an IP (failed login, refused handshake) and blocks the IP
 * for `blockDurationS` once `ipBlockAfterFailures` is reached. Off when that is 0.
 */
export async function recordIpFailure(deps: Deps, ip: string, reason: string): Promise<void> {
  const { ipBlockAfterFailures, loginFailureWindowS, blockDurationS } = deps.settings;
  if (ipBlockAfterFailures === 0) return;
  const failures = await incrementCounter(
    deps,
    ipFailureScope(ip),
    windowAt(nowS(deps.clock), loginFailureWindowS),
  );
  if (failures === ipBlockAfterFailures) {
    await putBlock(deps, blockId.ip(ip), blockDurationS, reason, 'system');
    deps.audit('warn', 'ip.blocked', {
      ip,
      reason,
      count: failures,
      durationS: blockDurationS,
      by: 'system',
    });
  }
}

/** Issues an access token and the first refresh token of a new family. */
export async function issueTokenPair(
  deps: Deps,
  user: { sub: string; username: string; roles: readonly string[] },
): Promise<TokenPair> {
  const { session, refreshToken } = await createSession(deps, user);
  const { token } = await issueAccessToken(deps, { ...user, sid: session.sid });
  return {
    access_token: token,
    token_type: 'Bearer',
    expires_in: deps.settings.accessTokenTtlS,
    refresh_token: refreshToken,
  };
}

/**
 * Spends a refresh token for a new pair. A spent token presented again revokes its
 * whole family, the family's access tokens included, and closes its sockets.
 */
export async function refresh(deps: Deps, body: Record<string, unknown>, caller: Caller): Promise<TokenPair> {
  const outcome = await rotateSession(deps, body.refresh_token);
  const { session } = outcome;
  if (outcome.kind === 'reused') {
    await Promise.all([revokeSession(deps, session.sid), revokeSidTokens(deps, session.sid)]);
    deps.audit('warn', 'auth.refresh_reuse', {
      username: session.username,
      sub: session.sub,
      sid: session.sid,
      ip: caller.ip,
      reason: 'spent_token_reused',
    });
    await closeSockets(deps, () => closeSessionSockets(deps, session.sid, 'token_revoked'));
    throw new AppError('invalid_token', 'the refresh token has already been used');
  }
  const access = { username: session.username, ip: caller.ip };
  const now = nowS(deps.clock);
  const [userItem, userMark, ...accessRows] = await batchGet(
    deps.db,
    [
      { table: deps.tables.users, key: userKey(session.username) },
      { table: deps.tables.revoked, key: { id: S(revokedId.user(session.sub)) } },
      ...accessRefs(deps, access),
    ],
    { consistent: true },
  );
  const user = userItem ? userFromItem(userItem) : undefined;
  const before = isLive(userMark, now) ? num(userMark, 'before') : undefined;
  if (!user || user.sub !== session.sub || (before !== undefined && session.createdAt <= before)) {
    await revokeSession(deps, session.sid);
    throw new AppError('invalid_token', 'the session has been revoked');
  }
  const denial = accessDenial(accessStateFrom(access, accessRows, now));
  if (denial) throw denial;
  const { token } = await issueAccessToken(deps, {
    sub: user.sub,
    username: user.username,
    roles: user.roles,
    sid: session.sid,
  });
  deps.audit('info', 'auth.refresh', {
    username: user.username,
    sub: user.sub,
    sid: session.sid,
    ip: caller.ip,
  });
  return {
    access_token: token,
    token_type: 'Bearer',
    expires_in: deps.settings.accessTokenTtlS,
    refresh_token: outcome.refreshToken,
  };
}

/** Reads a bearer token from an `Authorization` header value (scheme case-insensitive). */
export function bearerToken(header: string | undefined): string {
  const m = header === undefined ? null : /^Bearer[ ]+([^\s]+)\s*$/i.exec(header);
  if (!m?.[1]) throw new AppError('invalid_token', 'a Bearer token is required');
  return m[1];
}

/**
 * Verifies a bearer access token and checks, in one round trip, that it is not revoked
 * and that neither the user nor the IP is blocked.
 */
export async function authenticate(deps: Deps, token: string, caller: Caller): Promise<AccessClaims> {
  const claims = await verifyAccessToken(deps, token);
  const denial = accessDenial(await readAccessState(deps, { claims, ip: caller.ip }));
  if (denial) throw denial;
  return claims;
}

/** Revokes the access token and its refresh family, and closes every socket opened with them. */
export async function logout(deps: Deps, claims: AccessClaims, caller: Caller): Promise<void> {
  await Promise.all([
    revokeAccessToken(deps, claims.jti, claims.exp),
    revokeSidTokens(deps, claims.sid),
    revokeSession(deps, claims.sid),
  ]);
  deps.audit('info', 'auth.logout', {
    username: claims.username,
    sub: claims.sub,
    sid: claims.sid,
    ip: caller.ip,
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
