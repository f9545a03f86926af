import { readFile } from 'node:fs/promises';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  connectionsApi,
  regionOfEndpoint,
  type SignedConnectionsApi,
} from '../lambdas/aws/connections-api.ts';
import { listBlocks } from '../lambdas/core/access.ts';
import { blockUser, revokeUser, unblockUser } from '../lambdas/core/admin.ts';
import { createAudit } from '../lambdas/core/audit.ts';
import { systemClock } from '../lambdas/core/clock.ts';
import type { ConnectionsApi, Deps } from '../lambdas/core/deps.ts';
import { AppError, isAppError } from '../lambdas/core/errors.ts';
import { parseStoredKeySet, type StoredKeySet } from '../lambdas/core/keys.ts';
import { hashPassword, validatePassword } from '../lambdas/core/passwords.ts';
import { type Settings, SettingsError } from '../lambdas/core/settings.ts';
import {
  localTableNames,
  type TableKey,
  type TableNames,
  tableNamesFromEnv,
} from '../lambdas/core/tables.ts';
import { createUser, grantRole, listUsers, normalizeUsername, validateRole } from '../lambdas/core/users.ts';
import { rotateKeySet } from '../lambdas/custom-resource-keys.ts';
import { localConfig } from './config.ts';
import { findRunning, paths } from './data-dir.ts';
import { ensureTables, localDynamoClient, randomCredentials, startDynalite } from './dynamo.ts';
import { writeKeySetFile } from './key-file.ts';
import { localConnectionsApi } from './ws-management.ts';

const USAGE = `Usage:
  npm run users -- add <username> [--role <role>]...   password from USER_PASSWORD or the first line of stdin
  npm run users -- grant <username> <role>
  npm run users -- list
  npm run users -- block <username> [--for <duration>] [--reason <text>]   duration: 90s, 30m, 12h, 7d (default 1h)
  npm run users -- unblock <username>
  npm run users -- revoke <username>      refuse every token issued to the user so far, close their sockets
  npm run users -- blocks                 the user and IP blocks in force now
  npm run users -- rotate-keys            local only: a new signing key; the old ones verify until their tokens expire
Options:
  --aws    use the deployed tables, with AWS credentials and region from the environment. Table names
           come from USERS_TABLE, BLOCKLIST_TABLE, REVOKED_TABLE, CONNECTIONS_TABLE (the stack outputs
           UsersTableName, ...); WS_MANAGEMENT_ENDPOINT (the stage's callback URL) lets block and revoke
           close open sockets at once.
Local data: DATA_DIR (default .data); works while npm start is running.`;

class UsageError extends Error {}

/** Tables each command touches on AWS, so a missing variable is named before anything runs. */
const TABLES_OF: Record<string, readonly TableKey[]> = {
  add: ['users'],
  grant: ['users'],
  list: ['users'],
  block: ['users', 'blocklist'],
  unblock: ['blocklist'],
  revoke: ['users', 'revoked'],
  blocks: ['blocklist'],
};
const COMMANDS = [...Object.keys(TABLES_OF), 'rotate-keys'];

interface Args {
  command: string;
  positional: string[];
  roles: string[];
  durationS: number;
  reason: string;
}

/** `90s`, `30m`, `12h`, `7d`, or bare seconds. */
function parseDuration(raw: string | undefined): number {
  const m = /^(\d+)([smhd]?)$/.exec(raw ?? '');
  const unit = { '': 1, s: 1, m: 60, h: 3600, d: 86_400 }[m?.[2] ?? ''] ?? 1;
  if (!m) throw new UsageError(`--for takes a duration like 90s, 30m, 12h or 7d, got ${JSON.stringify(raw)}`);
  return Number(m[1]) * unit;
}

function parseArgs(args: string[]): Args {
  const [command = '', ...rest] = args;
  if (!COMMANDS.includes(command)) throw new UsageError(command ? `unknown command ${command}` : '');
  const out: Args = { command, positional: [], roles: [], durationS: 3600, reason: '' };
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i] ?? '';
    if (arg === '--role') out.roles.push(validateRole(rest[++i]));
    else if (arg === '--for') out.durationS = parseDuration(rest[++i]);
    else if (arg === '--reason') out.reason = rest[++i] ?? '';
    else if (arg.startsWith('--')) throw new UsageError(`unknown option ${arg}`);
    else out.positional.push(arg);
  }
  return out;
}

/** The tables the CLI acts on, opened on AWS or in the local system, with the deps over them. */
interface OpenedStore {
  deps: Deps;
  /** What `block` and `revoke` do to open sockets, for the summary line. */
  sockets: string;
  close(): Promise<void>;
}

// Revocation marks must outlive every token they refuse. The CLI cannot know the lifetimes
// the running system or the stack was given, so it assumes the longest the settings accept.
const LONGEST = { accessTokenTtlS: 86_400, refreshTokenTtlS: 90 * 86_400, clockSkewS: 300 };

function depsOf(settings: Settings, db: DynamoDBClient, tables: TableNames, api?: ConnectionsApi): Deps {
  return {
    settings: { ...settings, ...LONGEST },
    db,
    tables,
    // No command signs or verifies a token.
    keys: {
      signingKey: () => Promise.reject(new Error('the users CLI holds no signing key')),
      publicKeys: async () => [],
    },
    clock: systemClock,
    // The operator's own record of what was done, on stderr (stdout carries the command's answer).
    audit: createAudit((line) => process.stderr.write(`${line}\n`), systemClock),
    ...(api ? { api } : {}),
  };
}

/** Fails with a plain sentence when AWS has no region or no credentials, before any table is touched. */
async function checkAws(db: DynamoDBClient): Promise<void> {
  try {
    await db.config.region();
  } catch {
    throw new AppError('unavailable', '--aws needs a region: set AWS_REGION (or AWS_PROFILE with a region)');
  }
  try {
    await db.config.credentials();
  } catch {
    throw new AppError(
      'unavailable',
      '--aws found no AWS credentials: set AWS_PROFILE (after `aws sso login` or `aws configure`) or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY',
    );
  }
}

async function openAws(command: string): Promise<OpenedStore> {
  const settings = localConfig({ ...process.env, DATA_DIR: ':memory:' }).settings;
  const needed = [...(TABLES_OF[command] ?? [])];
  const endpoint = process.env.WS_MANAGEMENT_ENDPOINT;
  if (endpoint && (command === 'block' || command === 'revoke')) needed.push('connections');
  const tables = tableNamesFromEnv(process.env, needed);
  const db = new DynamoDBClient({});
  try {
    await checkAws(db);
  } catch (err) {
    db.destroy();
    throw err;
  }
  // The operator's credentials as the DynamoDB client resolved them (profile, SSO or environment).
  const client = endpoint
    ? connectionsApi({
        endpoint,
        region: regionOfEndpoint(endpoint) ?? (await db.config.region()),
        credentials: await db.config.credentials(),
      })
    : undefined;
  return storeOf(settings, db, tables, client);
}

/** A store reached over the network; with a `@connections` client, revoking and blocking close sockets at once. */
function storeOf(
  settings: Settings,
  db: DynamoDBClient,
  tables: Parameters<typeof depsOf>[2],
  client: SignedConnectionsApi | undefined,
): OpenedStore {
  return {
    deps: depsOf(settings, db, tables, client),
    sockets: client ? 'sockets closed' : 'open sockets close at their next frame or sweep',
    close: async () => {
      db.destroy();
      client?.destroy();
    },
  };
}

async function openLocal(dataDir: string, settings: Settings): Promise<OpenedStore> {
  const tables = localTableNames();
  // Two processes cannot open one LevelDB folder: reach the running system's store when there is one.
  const running = await findRunning(dataDir);
  if (running) {
    const db = localDynamoClient(running.dynamoEndpoint, running.dynamoCredentials);
    // Signed with the running gateway's secret, handed over in running.json (mode 0600).
    const client =
      running.managementEndpoint && running.managementCredentials
        ? localConnectionsApi(running.managementEndpoint, running.managementCredentials)
        : undefined;
    return storeOf(settings, db, tables, client);
  }
  const dynamo = await startDynalite({ path: paths(dataDir).dynamo, credentials: randomCredentials() });
  const db = localDynamoClient(dynamo.endpoint, dynamo.credentials);
  await ensureTables(db, tables);
  return {
    // Nothing is running, so no socket is open; rows left by a crash go with the next sweep.
    deps: depsOf(settings, db, tables),
    sockets: 'no socket is open (npm start is not running)',
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

const say = (line: string) => process.stdout.write(`${line}\n`);
const iso = (epochS: number) => new Date(epochS * 1000).toISOString().replace('.000Z', 'Z');

function usernameOf(args: Args, count = 1): string {
  if (args.positional.length !== count) throw new UsageError();
  const username = normalizeUsername(args.positional[0]);
  if (!username) throw new UsageError('a username is 3-32 of a-z, 0-9, _ . -');
  return username;
}

/** The operator, as `by` in audit lines and blocks. */
function operator(): { username: string } {
  return { username: `cli:${process.env.USER ?? process.env.LOGNAME ?? 'operator'}`.slice(0, 64) };
}

async function runCommand(args: Args, store: OpenedStore): Promise<void> {
  const { deps } = store;
  switch (args.command) {
    case 'list':
      for (const u of await listUsers(deps)) say(`${u.username}\t${u.roles.join(',')}\t${u.createdAt}`);
      return;
    case 'blocks': {
      const blocks = await listBlocks(deps);
      if (blocks.length === 0) say('no blocks in force');
      for (const b of blocks) say(`${b.kind}\t${b.subject}\tuntil ${iso(b.until)}\tby ${b.by}\t${b.reason}`);
      return;
    }
    case 'add': {
      const username = usernameOf(args);
      const password = validatePassword(await readPassword());
      const user = await createUser(deps, {
        username,
        passwordHash: await hashPassword(password),
        roles: args.roles,
      });
      say(`added ${user.username} (${user.roles.join(', ')})`);
      return;
    }
    case 'grant': {
      const username = usernameOf(args, 2);
      const user = await grantRole(deps, username, validateRole(args.positional[1]));
      say(`${user.username} now has roles: ${user.roles.join(', ')}`);
      return;
    }
    case 'block': {
      const username = usernameOf(args);
      await blockUser(deps, operator(), username, { duration_s: args.durationS, reason: args.reason });
      say(
        `blocked ${username} until ${iso(Math.floor(Date.now() / 1000) + args.durationS)}; ${store.sockets}`,
      );
      return;
    }
    case 'unblock': {
      const username = usernameOf(args);
      await unblockUser(deps, operator(), username);
      say(`unblocked ${username}`);
      return;
    }
    case 'revoke': {
      const username = usernameOf(args);
      await revokeUser(deps, operator(), username);
      say(`revoked every token of ${username} issued until now; ${store.sockets}`);
      return;
    }
  }
}

/** A new signing key for the local key set, as the stack rotates on AWS: [current, next, ...retired]. */
async function rotateLocalKeys(dataDir: string, settings: Settings): Promise<void> {
  const file = paths(dataDir).keys;
  let existing: StoredKeySet | undefined;
  try {
    existing = parseStoredKeySet(await readFile(file, 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  // A retired key verifies until every token it signed has expired.
  const keys = await rotateKeySet(existing?.keys, new Date(), settings.accessTokenTtlS + settings.clockSkewS);
  await writeKeySetFile(file, { keys });
  say(`signing key is now ${keys[0]?.kid}; the key set holds ${keys.length} keys (${file})`);
  if (await findRunning(dataDir))
    say('npm start is running: restart it to sign with the new key (tokens it issued stay valid)');
}

async function run(argv: string[]): Promise<void> {
  // Node 20 is supported here; the SDK's notice about its future Node floor is noise on every start.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const aws = argv.includes('--aws');
  const args = parseArgs(argv.filter((a) => a !== '--aws'));
  if (args.command === 'rotate-keys') {
    if (aws)
      throw new UsageError('on AWS, keys rotate with a deploy: npx cdk deploy -c keyRotation=<new value>');
    const config = localConfig(process.env);
    if (!config.dataDir) throw new UsageError('rotate-keys needs a data folder (DATA_DIR is :memory:)');
    await rotateLocalKeys(config.dataDir, config.settings);
    return;
  }
  let store: OpenedStore;
  if (aws) store = await openAws(args.command);
  else {
    const config = localConfig(process.env);
    if (!config.dataDir) throw new UsageError('the users CLI needs a data folder (DATA_DIR is :memory:)');
    store = await openLocal(config.dataDir, config.settings);
  }
  try {
    await runCommand(args, store);
  } finally {
    await store.close();
  }
}

/** The message of an error, with the store's underlying cause (AccessDenied, ResourceNotFound...) for operators. */
function describe(err: unknown): string {
  const cause = (err as { cause?: unknown }).cause;
  const detail = cause instanceof Error ? `: ${cause.name}: ${cause.message.split('\n')[0]}` : '';
  return `${(err as Error).message}${detail}`;
}

run(process.argv.slice(2)).catch((err: unknown) => {
  if (err instanceof UsageError) process.stderr.write(`${err.message ? `${err.message}\n` : ''}${USAGE}\n`);
  else if (err instanceof SettingsError) process.stderr.write(`${err.message}\n`);
  else process.stderr.write(`error: ${describe(err)}\n`);
  const expected = isAppError(err) || err instanceof UsageError || err instanceof SettingsError;
  process.exit(expected ? 2 : 1);
});
