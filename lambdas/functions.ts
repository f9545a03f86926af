import type { TableKey } from './core/tables.ts';

export type DynamoAction =
  | 'GetItem'
  | 'BatchGetItem'
  | 'PutItem'
  | 'UpdateItem'
  | 'DeleteItem'
  | 'Query'
  | 'Scan'
  | 'BatchWriteItem';

/**
 * One Lambda function: its entry file (`lambdas/<name>.ts`), what invokes it, and
 * exactly what it may touch. The CDK stack grants from this list and nothing else, and
 * the local system routes from it, so the two cannot drift apart.
 */
export interface FunctionSpec {
  readonly name: string;
  readonly description: string;
  /** HTTP API route keys (`POST /auth/login`) served by this function. */
  readonly httpRoutes?: readonly string[];
  /** WebSocket routes (`$connect`, `$default`, `$disconnect`) or `authorizer`. */
  readonly wsRoutes?: readonly ('authorizer' | '$connect' | '$default' | '$disconnect')[];
  /** Table actions; `Query` on a table also covers its indexes. */
  readonly tables: Readonly<Partial<Record<TableKey, readonly DynamoAction[]>>>;
  /** `sign`: may read the private key set; `verify`: public keys only; `none`: no keys. */
  readonly keys: 'sign' | 'verify' | 'none';
  /** Needs `execute-api:ManageConnections` to post to or close sockets. */
  readonly manageConnections?: boolean;
  /**
   * The fan-out queue of big rooms (lambdas/core/fanout.ts): `send` enqueues jobs
   * (`sqs:SendMessage`, `FANOUT_QUEUE_URL`), `work` also runs them (the queue's event source).
   */
  readonly fanoutQueue?: 'send' | 'work';
  /** Needs the argon2 native binary in its bundle. */
  readonly argon2?: boolean;
  /** Runs on a schedule (every `sweepIntervalS`) instead of on requests. */
  readonly schedule?: 'sweep';
  readonly memoryMb?: number;
  readonly timeoutS?: number;
}

/** What closing sockets needs: find them (GSIs), read and delete their rows and memberships. */
const CLOSE_SOCKETS = { connections: ['Query', 'DeleteItem', 'BatchWriteItem', 'UpdateItem'] } as const;

/** What authenticating a Bearer token reads: revocations and blocks, in one BatchGetItem. */
const AUTHENTICATE = { revoked: ['BatchGetItem'], blocklist: ['BatchGetItem'] } as const;

export const FUNCTIONS: readonly FunctionSpec[] = [
  {
    name: 'http-register',
    description: 'POST /auth/register',
    httpRoutes: ['POST /auth/register'],
    tables: { users: ['PutItem'], blocklist: ['BatchGetItem'], counters: ['UpdateItem'] },
    keys: 'none',
    argon2: true,
    memoryMb: 1024,
  },
  {
    name: 'http-login',
    description: 'POST /auth/login',
    httpRoutes: ['POST /auth/login'],
    tables: {
      users: ['BatchGetItem'],
      counters: ['BatchGetItem', 'UpdateItem', 'PutItem', 'DeleteItem'],
      blocklist: ['BatchGetItem', 'PutItem'],
      sessions: ['PutItem'],
    },
    keys: 'sign',
    argon2: true,
    memoryMb: 1024,
  },
  {
    name: 'http-refresh',
    description: 'POST /auth/refresh',
    httpRoutes: ['POST /auth/refresh'],
    tables: {
      sessions: ['GetItem', 'UpdateItem'],
      users: ['BatchGetItem'],
      revoked: ['BatchGetItem', 'PutItem'],
      blocklist: ['BatchGetItem'],
      ...CLOSE_SOCKETS,
    },
    keys: 'sign',
    manageConnections: true,
  },
  {
    name: 'http-logout',
    description: 'POST /auth/logout',
    httpRoutes: ['POST /auth/logout'],
    tables: {
      revoked: ['BatchGetItem', 'PutItem'],
      blocklist: ['BatchGetItem'],
      sessions: ['UpdateItem'],
      ...CLOSE_SOCKETS,
    },
    keys: 'verify',
    manageConnections: true,
  },
  {
    name: 'http-me',
    description: 'GET /auth/me',
    httpRoutes: ['GET /auth/me'],
    tables: { revoked: ['BatchGetItem'], blocklist: ['BatchGetItem'] },
    keys: 'verify',
  },
  {
    name: 'http-jwks',
    description: 'GET /.well-known/jwks.json',
    httpRoutes: ['GET /.well-known/jwks.json'],
    tables: {},
    keys: 'verify',
  },
  { name: 'http-health', description: 'GET /health', httpRoutes: ['GET /health'], tables: {}, keys: 'none' },
  {
    name: 'ws-authorizer',
    description: 'WebSocket $connect REQUEST authorizer',
    wsRoutes: ['authorizer'],
    // One BatchGetItem per handshake; PutItem for single-use tickets and automatic IP blocks.
    tables: {
      revoked: ['BatchGetItem', 'PutItem'],
      blocklist: ['BatchGetItem', 'PutItem'],
      counters: ['UpdateItem'],
    },
    keys: 'verify',
  },
  {
    name: 'ws-connect',
    description: 'WebSocket $connect',
    wsRoutes: ['$connect'],
    tables: {
      connections: ['PutItem', 'GetItem', 'UpdateItem', 'Query', 'DeleteItem', 'BatchWriteItem'],
      sessions: ['GetItem'],
    },
    keys: 'none',
    manageConnections: true,
  },
  {
    name: 'ws-default',
    description: 'WebSocket $default: every client frame',
    wsRoutes: ['$default'],
    tables: {
      counters: ['UpdateItem'],
      connections: ['BatchGetItem', 'PutItem', 'UpdateItem', 'DeleteItem', 'Query', 'BatchWriteItem'],
      revoked: ['BatchGetItem'],
      blocklist: ['BatchGetItem', 'PutItem'],
      messages: ['PutItem', 'Query'],
      grants: ['BatchGetItem'],
    },
    keys: 'verify',
    manageConnections: true,
    fanoutQueue: 'send',
  },
  {
    name: 'ws-disconnect',
    description: 'WebSocket $disconnect',
    wsRoutes: ['$disconnect'],
    tables: { connections: ['DeleteItem', 'UpdateItem', 'Query', 'BatchWriteItem'] },
    keys: 'none',
    manageConnections: true,
  },
  {
    name: 'sweeper',
    description: 'Closes expired or revoked sockets the push path missed',
    schedule: 'sweep',
    tables: {
      connections: ['Scan', 'Query', 'DeleteItem', 'UpdateItem', 'BatchWriteItem'],
      revoked: ['BatchGetItem'],
      blocklist: ['BatchGetItem'],
    },
    keys: 'none',
    manageConnections: true,
    timeoutS: 120,
  },
  {
    name: 'fanout-worker',
    description: "Delivers a big room's message: one key range of its members per SQS record",
    fanoutQueue: 'work',
    tables: {
      // Its range (Query), a later round's members (BatchGetItem), and forgetting a gone socket.
      connections: ['Query', 'BatchGetItem', 'DeleteItem', 'BatchWriteItem', 'UpdateItem'],
      // The job's claim (lambdas/core/fanout.ts): a conditional PutItem, read back when taken.
      counters: ['PutItem', 'BatchGetItem'],
    },
    keys: 'none',
    manageConnections: true,
    // A full batch is 1,000 signed posts: at 1 GB (0.58 vCPU) their CPU takes about as long as their waits.
    memoryMb: 1024,
    timeoutS: 15,
  },
  {
    name: 'http-ws-ticket',
    description: 'POST /auth/ws-ticket',
    httpRoutes: ['POST /auth/ws-ticket'],
    tables: { ...AUTHENTICATE },
    keys: 'sign',
  },
  {
    name: 'http-admin-user-block',
    description: 'POST and DELETE /admin/users/{username}/block',
    httpRoutes: ['POST /admin/users/{username}/block', 'DELETE /admin/users/{username}/block'],
    tables: {
      users: ['GetItem'],
      revoked: ['BatchGetItem'],
      blocklist: ['BatchGetItem', 'PutItem', 'DeleteItem'],
      ...CLOSE_SOCKETS,
    },
    keys: 'verify',
    manageConnections: true,
  },
  {
    name: 'http-admin-ip-block',
    description: 'POST and DELETE /admin/ips/{ip}/block',
    httpRoutes: ['POST /admin/ips/{ip}/block', 'DELETE /admin/ips/{ip}/block'],
    tables: { revoked: ['BatchGetItem'], blocklist: ['BatchGetItem', 'PutItem', 'DeleteItem'] },
    keys: 'verify',
  },
  {
    name: 'http-admin-user-revoke',
    description: 'POST /admin/users/{username}/revoke',
    httpRoutes: ['POST /admin/users/{username}/revoke'],
    tables: {
      users: ['GetItem'],
      revoked: ['BatchGetItem', 'PutItem'],
      blocklist: ['BatchGetItem'],
      ...CLOSE_SOCKETS,
    },
    keys: 'verify',
    manageConnections: true,
  },
  {
    name: 'http-admin-connections',
    description: 'GET /admin/connections',
    httpRoutes: ['GET /admin/connections'],
    tables: { ...AUTHENTICATE, connections: ['Scan'] },
    keys: 'verify',
  },
  {
    name: 'http-admin-room-messages',
    description: 'POST /admin/rooms/{room}/messages',
    httpRoutes: ['POST /admin/rooms/{room}/messages'],
    tables: {
      ...AUTHENTICATE,
      ...CLOSE_SOCKETS,
      messages: ['PutItem'],
    },
    keys: 'verify',
    manageConnections: true,
    fanoutQueue: 'send',
  },
  {
    name: 'http-admin-room-grants',
    description: 'PUT, DELETE and GET of /admin/rooms/{room}/grants',
    httpRoutes: [
      'PUT /admin/rooms/{room}/grants/{username}',
      'DELETE /admin/rooms/{room}/grants/{username}',
      'GET /admin/rooms/{room}/grants',
    ],
    tables: {
      ...AUTHENTICATE,
      ...CLOSE_SOCKETS,
      users: ['GetItem'],
      grants: ['PutItem', 'DeleteItem', 'Query'],
    },
    keys: 'verify',
    manageConnections: true,
  },
  {
    name: 'http-admin-blocks',
    description: 'GET /admin/blocks',
    httpRoutes: ['GET /admin/blocks'],
    tables: { revoked: ['BatchGetItem'], blocklist: ['BatchGetItem', 'Scan'] },
    keys: 'verify',
  },
  {
    name: 'http-token-exchange',
    description: 'POST /auth/token-exchange',
    httpRoutes: ['POST /auth/token-exchange'],
    tables: {
      users: ['Query', 'PutItem'],
      sessions: ['PutItem'],
      blocklist: ['BatchGetItem'],
      revoked: ['PutItem'],
    },
    keys: 'sign',
  },
];
