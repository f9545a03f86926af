import { randomUUID } from 'node:crypto';
import {
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  ScanCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import type { Deps } from './deps.ts';
import { AppError } from './errors.ts';
import { DEFAULT_ROLE, ROLE_PATTERN } from './roles.ts';
import {
  allPages,
  type Item,
  isConditionFailure,
  S,
  SS,
  storeCall,
  str,
  strs,
  unlessConditionFails,
} from './store.ts';

const USERNAME = /^[A-Za-z0-9_.-]{3,32}$/;

export interface User {
  readonly username: string;
  readonly sub: string;
  readonly roles: readonly string[];
  readonly passwordHash: string | undefined;
  readonly createdAt: string;
}

/** Lower-cased username if it is 3-32 of `[a-z0-9_.-]`, else undefined. ASCII only, so no look-alikes. */
export function normalizeUsername(raw: unknown): string | undefined {
  return typeof raw === 'string' && USERNAME.test(raw) ? raw.toLowerCase() : undefined;
}

export function validateRole(raw: unknown): string {
  if (typeof raw !== 'string' || !ROLE_PATTERN.test(raw)) {
    throw new AppError('invalid_request', 'a role is 1-32 of [a-z0-9_-]');
  }
  return raw;
}

export function userFromItem(item: Item): User {
  return {
    username: str(item, 'username') ?? '',
    sub: str(item, 'sub') ?? '',
    roles: strs(item, 'roles').sort(),
    passwordHash: str(item, 'passwordHash'),
    createdAt: str(item, 'createdAt') ?? '',
  };
}

export function userKey(username: string): Item {
  return { username: S(username) };
}

/** Creates a user once: a second user of the same name is a `conflict`, never an overwrite. */
export async function createUser(
  deps: Pick<Deps, 'db' | 'tables' | 'clock'>,
  input: { username: string; passwordHash: string; roles?: readonly string[] },
): Promise<User> {
  const roles = [DEFAULT_ROLE, ...(input.roles ?? [])];
  const user = await putNewUser(deps, 'create user', input.username, roles, {
    passwordHash: S(input.passwordHash),
  });
  if (!user) throw new AppError('conflict', 'that username is taken');
  return { ...user, passwordHash: input.passwordHash };
}

/**
 * Creates a user of an external issuer, keyed by `externalId`, with the default role and no
 * password hash (such a user can only sign in through the issuer); undefined when the name is taken.
 */
export function createExternalUser(
  deps: Pick<Deps, 'db' | 'tables' | 'clock'>,
  username: string,
  externalId: string,
): Promise<User | undefined> {
  return putNewUser(deps, 'create external user', username, [DEFAULT_ROLE], { externalId: S(externalId) });
}

/** The user an external issuer's subject is linked to, if any. */
export async function userByExternalId(
  deps: Pick<Deps, 'db' | 'tables'>,
  externalId: string,
): Promise<User | undefined> {
  const out = await storeCall(
    'find external user',
    (db) =>
      db.send(
        new QueryCommand({
          TableName: deps.tables.users,
          IndexName: 'byExternalId',
          KeyConditionExpression: 'externalId = :e',
          ExpressionAttributeValues: { ':e': S(externalId) },
          Limit: 1,
        }),
      ),
    deps.db,
  );
  const item = out.Items?.[0];
  return item ? userFromItem(item) : undefined;
}

/** Writes a new user row with a fresh `sub` (one conditional put); undefined when the name is taken. */
async function putNewUser(
  deps: Pick<Deps, 'db' | 'tables' | 'clock'>,
  what: string,
  username: string,
  roles: readonly string[],
  extra: Item,
): Promise<User | undefined> {
  const user: User = {
    username,
    sub: randomUUID(),
    roles: [...new Set(roles)].sort(),
    passwordHash: undefined,
    createdAt: new Date(deps.clock.now()).toISOString(),
  };
  const created = await unlessConditionFails(
    storeCall(
      what,
      (db) =>
        db.send(
          new PutItemCommand({
            TableName: deps.tables.users,
            Item: {
              username: S(user.username),
              sub: S(user.sub),
              roles: SS(user.roles),
              ...extra,
              createdAt: S(user.createdAt),
            },
            ConditionExpression: 'attribute_not_exists(username)',
          }),
        ),
      deps.db,
    ),
  );
  return created === undefined ? undefined : user;
}

export async function getUser(
  deps: Pick<Deps, 'db' | 'tables'>,
  username: string,
): Promise<User | undefined> {
  const out = await storeCall(
    'get user',
    (db) =>
      db.send(
        new GetItemCommand({ TableName: deps.tables.users, Key: userKey(username), ConsistentRead: true }),
      ),
    deps.db,
  );
  return out.Item ? userFromItem(out.Item) : undefined;
}

/** Adds a role to an existing user; `not_found` for an unknown user. */
export async function grantRole(
  deps: Pick<Deps, 'db' | 'tables'>,
  username: string,
  role: string,
): Promise<User> {
  try {
    const out = await storeCall(
      'grant role',
      (db) =>
        db.send(
          new UpdateItemCommand({
            TableName: deps.tables.users,
            Key: userKey(username),
            UpdateExpression: 'ADD #roles :role',
            ConditionExpression: 'attribute_exists(username)',
            ExpressionAttributeNames: { '#roles': 'roles' },
            ExpressionAttributeValues: { ':role': SS([validateRole(role)]) },
            ReturnValues: 'ALL_NEW',
          }),
        ),
      deps.db,
    );
    return userFromItem(out.Attributes ?? {});
  } catch (err) {
    if (isConditionFailure(err)) throw new AppError('not_found', `no user ${username}`);
    throw err;
  }
}

/** Every user (operator tooling only: a Scan, never on a request path). */
export async function listUsers(deps: Pick<Deps, 'db' | 'tables'>): Promise<User[]> {
  const items = await allPages((start) =>
    storeCall(
      'list users',
      (db) => db.send(new ScanCommand({ TableName: deps.tables.users, ExclusiveStartKey: start })),
      deps.db,
    ),
  );
  return items.map(userFromItem).sort((a, b) => a.username.localeCompare(b.username));
}
