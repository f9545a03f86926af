import { resolve } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { systemClock } from '../lambdas/core/clock.ts';
import { isAppError } from '../lambdas/core/errors.ts';
import { hashPassword, validatePassword } from '../lambdas/core/passwords.ts';
import { localTableNames, type TableNames, tableNamesFromEnv } from '../lambdas/core/tables.ts';
import { createUser, grantRole, listUsers, normalizeUsername, validateRole } from '../lambdas/core/users.ts';
import { findRunning, paths } from './data-dir.ts';
import { ensureTables, localDynamoClient, randomCredentials, startDynalite } from './dynamo.ts';

const USAGE = `Usage:
  npm run users -- add <username> [--role <role>]...   password from USER_PASSWORD or the first line of stdin
  npm run users -- grant <username> <role>
  npm run users -- list
Options:
  --aws    use the deployed tables (AWS credentials from the environment; USERS_TABLE names the table,
           see the stack output UsersTableName)
Local data: DATA_DIR (default .data); works while npm start is running.`;

interface Store {
  db: DynamoDBClient;
  tables: TableNames;
  close(): Promise<void>;
}

async function openStore(aws: boolean): Promise<Store> {
  if (aws) {
    const tables = tableNamesFromEnv(process.env, ['users']);
    const db = new DynamoDBClient({});
    return { db, tables, close: async () => db.destroy() };
  }
  const dataDir = resolve(process.env.DATA_DIR ?? '.data');
  // Two processes cannot open one LevelDB folder: reach the running system's store when there is one.
  const running = await findRunning(dataDir);
  if (running) {
    const db = localDynamoClient(running.dynamoEndpoint, running.dynamoCredentials);
    return { db, tables: localTableNames(), close: async () => db.destroy() };
  }
  const dynamo = await startDynalite({ path: paths(dataDir).dynamo, credentials: randomCredentials() });
  const db = localDynamoClient(dynamo.endpoint, dynamo.credentials);
  await ensureTables(db, localTableNames());
  return {
    db,
    tables: localTableNames(),
    close: async () => {
      db.destroy();
      await dynamo.close();
    },
  };
}

async function readPassword(): Promise<string> {
  if (process.env.USER_PASSWORD !== undefined) return process.env.USER_PASSWORD;
  if (process.stdin.isTTY) process.stderr.write('Password: ');
  let text = '';
  for await (const chunk of process.stdin) {
    text += String(chunk);
    if (text.includes('\n')) break;
  }
  return text.split(/\r?\n/)[0] ?? '';
}

async function run(argv: string[]): Promise<void> {
  // Node 20 is supported here; the SDK's notice about its future Node floor is noise on every start.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const aws = argv.includes('--aws');
  const args = argv.filter((a) => a !== '--aws');
  const [command, ...rest] = args;
  const roles: string[] = [];
  const positional: string[] = [];
  for (let i = 0; i < rest.length; i++) {
    if (rest[i] === '--role') roles.push(validateRole(rest[++i]));
    else positional.push(rest[i] ?? '');
  }
  if (!command || !['add', 'grant', 'list'].includes(command)) throw new UsageError();
  const store = await openStore(aws);
  const deps = { db: store.db, tables: store.tables, clock: systemClock };
  try {
    if (command === 'list') {
      for (const u of await listUsers(deps))
        process.stdout.write(`${u.username}\t${u.roles.join(',')}\t${u.createdAt}\n`);
      return;
    }
    const username = normalizeUsername(positional[0]);
    if (!username) throw new UsageError('a username is 3-32 of a-z, 0-9, _ . -');
    if (command === 'add') {
      const password = validatePassword(await readPassword());
      const user = await createUser(deps, { username, passwordHash: await hashPassword(password), roles });
      process.stdout.write(`added ${user.username} (${user.roles.join(', ')})\n`);
    } else {
      if (positional.length !== 2) throw new UsageError();
      const user = await grantRole(deps, username, validateRole(positional[1]));
      process.stdout.write(`${user.username} now has roles: ${user.roles.join(', ')}\n`);
    }
  } finally {
    await store.close();
  }
}

class UsageError extends Error {}

run(process.argv.slice(2)).catch((err: unknown) => {
  if (err instanceof UsageError) process.stderr.write(`${err.message ? `${err.message}\n` : ''}${USAGE}\n`);
  else if (isAppError(err)) process.stderr.write(`error: ${err.message}\n`);
  else process.stderr.write(`error: ${(err as Error).message}\n`);
  process.exit(isAppError(err) || err instanceof UsageError ? 2 : 1);
});
