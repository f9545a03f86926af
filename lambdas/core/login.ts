import { DeleteItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { accessDenial, accessRefs, accessStateFrom, blockedMessage, readAccessState } from './access.ts';
import { issueTokenPair, type RequestSource, type TokenPair } from './auth.ts';
import { nowS } from './clock.ts';
import { counterId, incrementCounter, secondsLeft, windowAt } from './counters.ts';
import type { Deps } from './deps.ts';
import { AppError } from './errors.ts';
import { recordIpFailure } from './ip-failures.ts';
import { hashPassword, PASSWORD_MAX, validatePassword, verifyPassword } from './passwords.ts';
import { batchGet, isLive, N, num, S, storeCall, unlessConditionFails } from './store.ts';
import { createUser, normalizeUsername, userFromItem, userKey } from './users.ts';

// Password checks live apart from the token paths so that only register and login
// carry the argon2 native module (and its cold-start cost).

/** Registers a user with the `user` role. */
export async function register(
  deps: Deps,
  body: Record<string, unknown>,
  source: RequestSource,
): Promise<{ username: string }> {
  const username = normalizeUsername(body.username);
  if (!username) throw new AppError('invalid_request', 'username must be 3-32 of a-z, 0-9, _ . -');
  const password = validatePassword(body.password);
  if (source.ip) {
    // Every registration costs an argon2 hash: count each from the IP (an atomic ADD, so a
    // burst cannot slip past) in the same round trip as the IP's block.
    const now = nowS(deps.clock);
    const window = windowAt(now, deps.settings.loginFailureWindowS);
    const [state, count] = await Promise.all([
      readAccessState(deps, { ip: source.ip }),
      incrementCounter(deps, `register#ip#${source.ip}`, window),
    ]);
    const denial = accessDenial(state);
    if (denial) throw denial;
    if (count > deps.settings.registerMaxPerIp) {
      if (count === deps.settings.registerMaxPerIp + 1)
        deps.audit('warn', 'auth.denied', {
          route: 'POST /auth/register',
          ip: source.ip,
          reason: 'rate_limited',
        });
      throw new AppError('rate_limited', 'too many registrations from this address; try again later', {
        retryAfterS: secondsLeft(window, now),
      });
    }
  }
  const user = await createUser(deps, { username, passwordHash: await hashPassword(password) });
  deps.audit('info', 'auth.register', { username, sub: user.sub, ip: source.ip });
  return { username };
}

const loginScope = {
  user: (username: string) => `login#user#${username}`,
  pair: (username: string, ip: string) => `login#pair#${username}#${ip}`,
  ip: (ip: string) => `login#ip#${ip}`,
};
/** Counter-table ids outside any window: the username's slowdown slot, and an address it logged in from. */
const slowId = (username: string) => `login#slow#${username}`;
const knownId = (username: string, ip: string) => `login#known#${username}#${ip}`;
/** How long a username with `loginMaxFailures` failures (from all addresses) waits between password checks. */
export const LOGIN_SLOWDOWN_S = 1;
/** How long an address that logged in as a user stays known to it. */
const KNOWN_ADDRESS_S = 30 * 86_400;

/**
 * Checks a username and password. One round trip reads the user, the failure counters
 * (this username from this address, this address, this username from anywhere), whether
 * this address has logged in as this user before, and the blocks; an unknown user is
 * checked against a dummy hash so it costs the same as a wrong password.
 *
 * The lock is narrow so that no one can lock a user out from elsewhere: after
 * `loginMaxFailures` failures a username is locked for the address they came from (even
 * the right password waits), and an address after `loginMaxFailuresPerIp` failures. Failures
 * of a username from all addresses only slow it down: one password check per
 * `LOGIN_SLOWDOWN_S` (a conditional write), and addresses it has logged in from are exempt.
 */
export async function login(
  deps: Deps,
  body: Record<string, unknown>,
  source: RequestSource,
): Promise<TokenPair> {
  if (typeof body.username !== 'string' || typeof body.password !== 'string') {
    throw new AppError('invalid_request', 'username and password are required strings');
  }
  const { settings, tables } = deps;
  const username = normalizeUsername(body.username) ?? '';
  const now = nowS(deps.clock);
  const window = windowAt(now, settings.loginFailureWindowS);
  const name = username || '-';
  const ip = source.ip ?? '-';
  const scopes = {
    user: loginScope.user(name),
    pair: loginScope.pair(name, ip),
    ip: source.ip ? loginScope.ip(source.ip) : undefined,
  };

  const access = { username: username || undefined, ip: source.ip };
  const counter = (scope: string) => ({ table: tables.counters, key: { id: S(counterId(scope, window)) } });
  const [userItem, userFailures, pairFailures, ipFailures, known, ...accessRows] = await batchGet(
    deps.db,
    [
      { table: tables.users, key: userKey(name) },
      counter(scopes.user),
      counter(scopes.pair),
      counter(scopes.ip ?? 'login#ip#-'),
      { table: tables.counters, key: { id: S(knownId(name, ip)) } },
      ...accessRefs(deps, access),
    ],
    { consistent: true },
  );
  const state = accessStateFrom(access, accessRows, now);
  if (state.ipBlock) {
    deps.audit('warn', 'auth.login_failed', { username, ip: source.ip, reason: 'ip_blocked' });
    throw new AppError('forbidden', 'logins from this address are blocked');
  }
  const count = (item: typeof userFailures) => (isLive(item, now) ? (num(item, 'count') ?? 0) : 0);
  if (
    count(pairFailures) >= settings.loginMaxFailures ||
    (scopes.ip && count(ipFailures) >= settings.loginMaxFailuresPerIp)
  ) {
    deps.audit('warn', 'auth.login_failed', { username, ip: source.ip, reason: 'rate_limited' });
    throw new AppError('rate_limited', 'too many failed logins; try again later', {
      retryAfterS: secondsLeft(window, now),
    });
  }
  if (count(userFailures) >= settings.loginMaxFailures && !(source.ip && isLive(known, now))) {
    if (!(await takeSlowdownSlot(deps, name, now))) {
      deps.audit('warn', 'auth.login_failed', { username, ip: source.ip, reason: 'slowed_down' });
      throw new AppError('rate_limited', 'too many failed logins for this user; retry in a moment', {
        retryAfterS: LOGIN_SLOWDOWN_S,
      });
    }
  }

  const user = userItem ? userFromItem(userItem) : undefined;
  const password = body.password.normalize('NFC');
  const ok = [...password].length <= PASSWORD_MAX && (await verifyPassword(user?.passwordHash, password));
  if (!ok || !user) {
    await recordLoginFailure(deps, { scopes, ip: source.ip, window });
    deps.audit('warn', 'auth.login_failed', {
      username,
      ip: source.ip,
      reason: user ? 'bad_password' : 'unknown_user',
    });
    throw new AppError('invalid_credentials', 'invalid username or password');
  }
  if (state.userBlock) {
    deps.audit('warn', 'auth.login_failed', { username, ip: source.ip, reason: 'blocked' });
    throw new AppError('forbidden', blockedMessage('this user is blocked', state.userBlock));
  }

  const clear = (id: string) =>
    storeCall(
      'reset failures',
      (db) => db.send(new DeleteItemCommand({ TableName: tables.counters, Key: { id: S(id) } })),
      deps.db,
    );
  const [pair] = await Promise.all([
    issueTokenPair(deps, user),
    // The right password clears what failures it could have caused, and marks the address known.
    clear(counterId(scopes.user, window)),
    clear(counterId(scopes.pair, window)),
    source.ip ? markKnownAddress(deps, name, source.ip, now) : undefined,
  ]);
  deps.audit('info', 'auth.login', { username, sub: user.sub, ip: source.ip });
  return pair;
}

/** One password check per `LOGIN_SLOWDOWN_S` for a username: a conditional put, so racing attempts take turns. */
async function takeSlowdownSlot(deps: Deps, username: string, now: number): Promise<boolean> {
  const taken = await unlessConditionFails(
    storeCall(
      'login slowdown',
      (db) =>
        db.send(
          new PutItemCommand({
            TableName: deps.tables.counters,
            Item: { id: S(slowId(username)), expiresAt: N(now + LOGIN_SLOWDOWN_S) },
            ConditionExpression: 'attribute_not_exists(id) OR expiresAt <= :now',
            ExpressionAttributeValues: { ':now': N(now) },
          }),
        ),
      deps.db,
    ),
  );
  return taken !== undefined;
}

async function markKnownAddress(deps: Deps, username: string, ip: string, now: number): Promise<void> {
  await storeCall(
    'known address',
    (db) =>
      db.send(
        new PutItemCommand({
          TableName: deps.tables.counters,
          Item: { id: S(knownId(username, ip)), expiresAt: N(now + KNOWN_ADDRESS_S) },
        }),
      ),
    deps.db,
  );
}

async function recordLoginFailure(
  deps: Deps,
  f: {
    scopes: { user: string; pair: string; ip: string | undefined };
    ip: string | undefined;
    window: ReturnType<typeof windowAt>;
  },
): Promise<void> {
  await Promise.all([
    incrementCounter(deps, f.scopes.user, f.window),
    incrementCounter(deps, f.scopes.pair, f.window),
    f.scopes.ip ? incrementCounter(deps, f.scopes.ip, f.window) : undefined,
    f.ip ? recordIpFailure(deps, f.ip, 'login_failures') : undefined,
  ]);
}
