import { randomUUID } from 'node:crypto';
import { GetItemCommand, PutItemCommand, ScanCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import type { Deps } from './deps.ts';
import { AppError } from './errors.ts';
import { type Item, isConditionFailure, S, SS, storeCall, str, strs } from './store.ts';

export const DEFAULT_ROLE = 'user';
const USERNAME = /^[A-Za-z0-9_.-]{3,32}$/;
const ROLE = /^[a-z0-9_-]{1,32}$/;

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
  if (typeof raw !== 'string' || !ROLE.test(raw)) {
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
  const roles = [...new Set([DEFAULT_ROLE, ...(input.roles ?? [])])].sort();
  const user: User = {
    username: input.username,
    sub: randomUUID(),
    roles,
    passwordHash: input.passwordHash,
    createdAt: new Date(deps.clock.now()).toISOString(),
  };
  try {
    await storeCall(
      'create user',
      (db) =>
        db.send(
          new PutItemCommand({
            TableName: deps.tables.users,
            Item: {
              username: S(user.username),
              sub: S(user.sub),
              roles: SS(roles),
              passwordHash: S(input.passwordHash),
              createdAt: S(user.createdAt),
            },
            ConditionExpression: 'attribute_not_exists(username)',
          }),
        ),
      deps.db,
    );
  } catch (err) {
    if (isConditionFailure(err)) throw new AppError('conflict', 'that username is taken');
    throw err;
  }
  return user;
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
  const users: User[] = [];
  let start: Item | undefined;
  do {
    const out = await storeCall(
      'list users',
      (db) => db.send(new ScanCommand({ TableName: deps.tables.users, ExclusiveStartKey: start })),
      deps.db,
    );
    users.push(...(out.Items ?? []).map(userFromItem));
    start = out.LastEvaluatedKey;
  } while (start);
  return users.sort((a, b) => a.username.localeCompare(b.username));
}
