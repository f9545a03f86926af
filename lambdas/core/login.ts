import { DeleteItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import {
  type AccessState,
  accessDenial,
  accessRefs,
  accessStateFrom,
  blockedMessage,
  readAccessState,
} from './access.ts';
import { issueTokenPair, type RequestSource, type TokenPair } from './auth.ts';
import { nowS } from './clock.ts';
import { counterId, incrementCounter, secondsLeft, windowAt } from './counters.ts';
import type { Deps } from './deps.ts';
import { AppError } from './errors.ts';
import { recordIpFailure } from './ip-failures.ts';
import { hashPassword, PASSWORD_MAX, validatePassword, verifyPassword } from './passwords.ts';
import { batchGet, type Item, isLive, N, num, S, storeCall, unlessConditionFails } from './store.ts';
import { createUser, normalizeUsername, type User, userFromItem, userKey } from './users.ts';

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

/** One login request, before anything is read: who it names, from where, in which failure window. */
interface LoginAttempt {
  /** The normalized username, or '' when the name given is not a valid one. */
  readonly username: string;
  /** The name the counters and the user row are keyed by ('-' for an invalid one). */
  readonly name: string;
  /** The password as sent (normalized only when it is checked). */
  readonly password: string;
  readonly ip: string | undefined;
  readonly now: number;
  readonly window: ReturnType<typeof windowAt>;
  readonly scopes: { user: string; pair: string; ip: string | undefined };
}

/** What the login's one round trip read. */
interface LoginReads {
  readonly userItem: Item | undefined;
  /** Live failure counts: this username from anywhere, from this address, and this address. */
  readonly failures: { readonly user: number; readonly pair: number; readonly ip: number };
  /** Whether this address has logged in as this user before. */
  readonly known: boolean;
  readonly state: AccessState;
}

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
  const attempt = loginAttempt(deps, body, source);
  const reads = await readLogin(deps, attempt);
  await checkLoginLimits(deps, attempt, reads);
  const user = await checkCredentials(deps, attempt, reads);
  return completeLogin(deps, attempt, user);
}

function loginAttempt(deps: Deps, body: Record<string, unknown>, source: RequestSource): LoginAttempt {
  if (typeof body.username !== 'string' || typeof body.password !== 'string') {
    throw new AppError('invalid_request', 'username and password are required strings');
  }
  const username = normalizeUsername(body.username) ?? '';
  const now = nowS(deps.clock);
  const name = username || '-';
  return {
    username,
    name,
    password: body.password,
    ip: source.ip,
    now,
    window: windowAt(now, deps.settings.loginFailureWindowS),
    scopes: {
      user: loginScope.user(name),
      pair: loginScope.pair(name, source.ip ?? '-'),
      ip: source.ip ? loginScope.ip(source.ip) : undefined,
    },
  };
}

/** The user, the three failure counters, the known-address mark and the blocks, in one BatchGetItem. */
async function readLogin(deps: Deps, a: LoginAttempt): Promise<LoginReads> {
  const { tables } = deps;
  const access = { username: a.username || undefined, ip: a.ip };
  const counter = (scope: string) => ({ table: tables.counters, key: { id: S(counterId(scope, a.window)) } });
  const [userItem, userFailures, pairFailures, ipFailures, known, ...accessRows] = await batchGet(
    deps.db,
    [
      { table: tables.users, key: userKey(a.name) },
      counter(a.scopes.user),
      counter(a.scopes.pair),
      counter(a.scopes.ip ?? 'login#ip#-'),
      { table: tables.counters, key: { id: S(knownId(a.name, a.ip ?? '-')) } },
      ...accessRefs(deps, access),
    ],
    { consistent: true },
  );
  const count = (item: Item | undefined) => (isLive(item, a.now) ? (num(item, 'count') ?? 0) : 0);
  return {
    userItem,
    failures: { user: count(userFailures), pair: count(pairFailures), ip: count(ipFailures) },
    known: isLive(known, a.now),
    state: accessStateFrom(access, accessRows, a.now),
  };
}

/** Refuses a blocked address, a locked username or address, and a username slowed down (taking its slot). */
async function checkLoginLimits(deps: Deps, a: LoginAttempt, reads: LoginReads): Promise<void> {
  const { settings } = deps;
  if (reads.state.ipBlock) {
    loginFailed(deps, a, 'ip_blocked');
    throw new AppError('forbidden', 'logins from this address are blocked');
  }
  if (
    reads.failures.pair >= settings.loginMaxFailures ||
    (a.scopes.ip && reads.failures.ip >= settings.loginMaxFailuresPerIp)
  ) {
    loginFailed(deps, a, 'rate_limited');
    throw new AppError('rate_limited', 'too many failed logins; try again later', {
      retryAfterS: secondsLeft(a.window, a.now),
    });
  }
  if (reads.failures.user >= settings.loginMaxFailures && !(a.ip && reads.known)) {
    if (!(await takeSlowdownSlot(deps, a.name, a.now))) {
      loginFailed(deps, a, 'slowed_down');
      throw new AppError('rate_limited', 'too many failed logins for this user; retry in a moment', {
        retryAfterS: LOGIN_SLOWDOWN_S,
      });
    }
  }
}

/**
 * The password check, the same for a known and an unknown user (whose missing hash is checked
 * against a dummy), then the user's block. A wrong password counts as a failure.
 */
async function checkCredentials(deps: Deps, a: LoginAttempt, reads: LoginReads): Promise<User> {
  const user = reads.userItem ? userFromItem(reads.userItem) : undefined;
  const password = a.password.normalize('NFC');
  const ok = [...password].length <= PASSWORD_MAX && (await verifyPassword(user?.passwordHash, password));
  if (!ok || !user) {
    await recordLoginFailure(deps, a);
    loginFailed(deps, a, user ? 'bad_password' : 'unknown_user');
    throw new AppError('invalid_credentials', 'invalid username or password');
  }
  if (reads.state.userBlock) {
    loginFailed(deps, a, 'blocked');
    throw new AppError('forbidden', blockedMessage('this user is blocked', reads.state.userBlock));
  }
  return user;
}

/** Issues the pair; the right password clears what failures it could have caused, and marks the address known. */
async function completeLogin(deps: Deps, a: LoginAttempt, user: User): Promise<TokenPair> {
  const clear = (id: string) =>
    storeCall(
      'reset failures',
      (db) => db.send(new DeleteItemCommand({ TableName: deps.tables.counters, Key: { id: S(id) } })),
      deps.db,
    );
  const [pair] = await Promise.all([
    issueTokenPair(deps, user),
    clear(counterId(a.scopes.user, a.window)),
    clear(counterId(a.scopes.pair, a.window)),
    a.ip ? markKnownAddress(deps, a.name, a.ip, a.now) : undefined,
  ]);
  deps.audit('info', 'auth.login', { username: a.username, sub: user.sub, ip: a.ip });
  return pair;
}

type LoginFailure =
  | 'ip_blocked'
  | 'rate_limited'
  | 'slowed_down'
  | 'bad_password'
  | 'unknown_user'
  | 'blocked';

function loginFailed(deps: Deps, a: LoginAttempt, reason: LoginFailure): void {
  deps.audit('warn', 'auth.login_failed', { username: a.username, ip: a.ip, reason });
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
  f: Pick<LoginAttempt, 'scopes' | 'ip' | 'window'>,
): Promise<void> {
  await Promise.all([
    incrementCounter(deps, f.scopes.user, f.window),
    incrementCounter(deps, f.scopes.pair, f.window),
    f.scopes.ip ? incrementCounter(deps, f.scopes.ip, f.window) : undefined,
    f.ip ? recordIpFailure(deps, f.ip, 'login_failures') : undefined,
  ]);
}
