/**
 * Every DynamoDB table of the product, described once. The local system creates these
 * tables in dynalite and the CDK stack creates them on AWS, both from this module.
 */
export type TableKey =
  | 'users'
  | 'sessions'
  | 'revoked'
  | 'blocklist'
  | 'counters'
  | 'connections'
  | 'messages'
  | 'grants';

export interface KeyAttr {
  readonly name: string;
  readonly type: 'S' | 'N';
}

export interface IndexDef {
  readonly indexName: string;
  readonly partitionKey: KeyAttr;
  readonly sortKey?: KeyAttr;
  /** Attributes projected besides the keys; 'ALL' for every attribute. */
  readonly projection: 'ALL' | 'KEYS_ONLY' | readonly string[];
}

export interface TableDef {
  readonly key: TableKey;
  readonly purpose: string;
  readonly partitionKey: KeyAttr;
  readonly sortKey?: KeyAttr;
  /** Epoch-seconds attribute that DynamoDB TTL deletes by (late: every read checks it too). */
  readonly ttlAttribute?: 'expiresAt';
  readonly indexes: readonly IndexDef[];
  /** Holds data that cannot be rebuilt (users, sessions): kept on stack deletion, with point-in-time recovery. */
  readonly durable: boolean;
}

export const TTL_ATTRIBUTE = 'expiresAt';

/** A table whose rows expire (by `expiresAt`) and can be rebuilt: the shape of most of them. */
function expiring(
  key: TableKey,
  purpose: string,
  keys: Pick<TableDef, 'partitionKey' | 'sortKey'>,
  indexes: readonly IndexDef[] = [],
): TableDef {
  return { key, purpose, ...keys, ttlAttribute: TTL_ATTRIBUTE, indexes, durable: false };
}

const ID: KeyAttr = { name: 'id', type: 'S' };

export const TABLES: Readonly<Record<TableKey, TableDef>> = {
  users: {
    key: 'users',
    purpose: 'Accounts: password hash, roles, optional external (OIDC) identity.',
    partitionKey: { name: 'username', type: 'S' },
    indexes: [
      // What the token exchange reads to issue tokens, and no more: never a password hash.
      {
        indexName: 'byExternalId',
        partitionKey: { name: 'externalId', type: 'S' },
        projection: ['sub', 'roles'],
      },
    ],
    durable: true,
  },
  sessions: {
    key: 'sessions',
    purpose: 'Refresh-token families, one item per family (sid), rotated on each refresh.',
    partitionKey: { name: 'sid', type: 'S' },
    ttlAttribute: TTL_ATTRIBUTE,
    indexes: [],
    durable: true,
  },
  revoked: expiring(
    'revoked',
    'Revocations: `jti#<jti>`, `sid#<sid>`, `user#<sub>` (tokens issued before a time), `ticket#<jti>` (spent tickets).',
    { partitionKey: ID },
  ),
  blocklist: expiring('blocklist', 'Blocks: `user#<username>` and `ip#<address>`, each until expiresAt.', {
    partitionKey: ID,
  }),
  counters: expiring('counters', 'Fixed-window counters for rate limits and login throttling.', {
    partitionKey: ID,
  }),
  connections: expiring(
    'connections',
    'Open sockets (`pk=conn#<id>, sk=conn`) and room memberships (`pk=room#<room>, sk=<connectionId>`), so fan-out queries one room.',
    { partitionKey: { name: 'pk', type: 'S' }, sortKey: { name: 'sk', type: 'S' } },
    [
      // Sparse: only socket rows carry these attributes, never memberships. `byUser`
      // projects everything because closing or counting a user's sockets reads every field
      // of the row (socketRowFrom); `bySid` needs the socket's key alone.
      { indexName: 'byUser', partitionKey: { name: 'username', type: 'S' }, projection: 'ALL' },
      { indexName: 'bySid', partitionKey: { name: 'sid', type: 'S' }, projection: 'KEYS_ONLY' },
    ],
  ),
  messages: expiring(
    'messages',
    "Room history, one partition per room: messages (`sk=m#<epoch>#<seq>`), the room's counter (`sk=#seq`: epoch, latest seq) and idempotency records (`sk=k#<username>#<key>`), kept for historyTtlS.",
    { partitionKey: { name: 'room', type: 'S' }, sortKey: { name: 'sk', type: 'S' } },
  ),
  grants: {
    key: 'grants',
    purpose:
      'Who may join a `private:` room: `room`, `username`, `access` (member or reader), `grantedAt`, `by`.',
    partitionKey: { name: 'room', type: 'S' },
    sortKey: { name: 'username', type: 'S' },
    indexes: [],
    // Operators' decisions, not rebuildable from anything else.
    durable: true,
  },
};

export const TABLE_KEYS = Object.keys(TABLES) as TableKey[];

/** The concrete table name of each table in one deployment. */
export type TableNames = Readonly<Record<TableKey, string>>;

/** `connections` -> `CONNECTIONS_TABLE`: the environment variable carrying a table's name. */
export function tableEnvName(key: TableKey): string {
  return `${key.toUpperCase()}_TABLE`;
}

/** Table names from a function's environment; throws naming every missing variable. */
export function tableNamesFromEnv(
  env: NodeJS.ProcessEnv,
  only: readonly TableKey[] = TABLE_KEYS,
): TableNames {
  const missing: string[] = [];
  const names: Partial<Record<TableKey, string>> = {};
  for (const key of TABLE_KEYS) {
    const value = env[tableEnvName(key)];
    if (value) names[key] = value;
    else if (only.includes(key)) missing.push(tableEnvName(key));
  }
  if (missing.length > 0) throw new Error(`Missing table settings: ${missing.join(', ')}`);
  return Object.freeze(names) as TableNames;
}

/** Local table names: a fixed prefix so one dynalite can hold several systems (tests). */
export function localTableNames(prefix = 'jr-'): TableNames {
  const names = {} as Record<TableKey, string>;
  for (const key of TABLE_KEYS) names[key] = `${prefix}${key}`;
  return Object.freeze(names);
}
