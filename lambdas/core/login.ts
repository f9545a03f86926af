import { DeleteItemCommand } from '@aws-sdk/client-dynamodb';
import { accessDenial, accessRefs, accessStateFrom, readAccessState } from './access.ts';
import { type Caller, issueTokenPair, type TokenPair } from './auth.ts';
import { nowS } from './clock.ts';
import { counterId, incrementCounter, secondsLeft, windowAt } from './counters.ts';
import type { Deps } from './deps.ts';
import { AppError } from './errors.ts';
import { recordIpFailure } from './ip-failures.ts';
import { hashPassword, PASSWORD_MAX, validatePassword, verifyPassword } from './passwords.ts';
import { batchGet, isLive, num, S, storeCall } from './store.ts';
import { createUser, normalizeUsername, userFromItem, userKey } from './users.ts';

// Password checks live apart from the token paths so that only register and login
// carry the argon2 native module (and its cold-start cost).

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
    // Every registration costs an argon2 hash: count each from the IP (an atomic ADD, so a
    // burst cannot slip past) in the same round trip as the IP's block.
    const now = nowS(deps.clock);
    const window = windowAt(now, deps.settings.loginFailureWindowS);
    const [state, count] = await Promise.all([
      readAccessState(deps, { ip: caller.ip }),
      incrementCounter(deps, `register#ip#${caller.ip}`, window),
    ]);
    const denial = accessDenial(state);
    if (denial) throw denial;
    if (count > deps.settings.registerMaxPerIp) {
      if (count === deps.settings.registerMaxPerIp + 1)
        deps.audit('warn', 'auth.denied', {
          route: 'POST /auth/register',
          ip: caller.ip,
          reason: 'rate_limited',
        });
      throw new AppError('rate_limited', 'too many registrations from this address; try again later', {
        retryAfterS: secondsLeft(window, now),
      });
    }
  }
  const user = await createUser(deps, { username, passwordHash: await hashPassword(password) });
  deps.audit('info', 'auth.register', { username, sub: user.sub, ip: caller.ip });
  return { username };
}

const loginScope = {
  user: (username: string) => `login#user#${username}`,
  ip: (ip: string) => `login#ip#${ip}`,
};

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
