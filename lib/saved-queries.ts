import { Stack } from 'aws-cdk-lib';
import * as logs from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';

/** One saved query: its construct id, its name after `{stack}/`, and the log groups it reads. */
interface SavedQuery {
  readonly id: string;
  readonly name: string;
  /** Every function's log group, or the WebSocket stage's access log. */
  readonly over: 'functions' | 'webSocketAccess';
  readonly query: logs.QueryStringProps;
}

const QUERIES: readonly SavedQuery[] = [
  {
    id: 'FailedLoginsByIp',
    name: 'failed logins by IP',
    over: 'functions',
    query: {
      filterStatements: ['event = "auth.login_failed"'],
      statsStatements: ['count(*) as failures, count_distinct(username) as usernames by ip'],
      sort: 'failures desc',
      limit: 50,
    },
  },
  {
    id: 'DenialsByReason',
    name: 'denials by reason',
    over: 'functions',
    query: {
      filterStatements: ['event in ["ws.denied", "auth.denied"]'],
      statsStatements: ['count(*) as denials by event, reason'],
      sort: 'denials desc',
      limit: 50,
    },
  },
  {
    id: 'Blocks',
    name: 'who was blocked and why',
    over: 'functions',
    query: {
      fields: ['time', 'event', 'username', 'ip', 'reason', 'durationS', 'by'],
      filterStatements: ['event in ["user.blocked", "ip.blocked", "user.unblocked", "ip.unblocked"]'],
      sort: 'time desc',
      limit: 200,
    },
  },
  {
    id: 'RoomAccess',
    name: 'room access',
    over: 'functions',
    query: {
      fields: ['time', 'event', 'username', 'room', 'reason', 'access', 'by', 'count'],
      filterStatements: ['event in ["room.denied", "room.granted", "room.grant_revoked"]'],
      sort: 'time desc',
      limit: 200,
    },
  },
  {
    id: 'TopSenders',
    name: 'top senders',
    over: 'webSocketAccess',
    query: {
      filterStatements: ['routeKey = "$default"'],
      statsStatements: ['count(*) as frames, count_distinct(connectionId) as sockets by username, principal'],
      sort: 'frames desc',
      limit: 20,
    },
  },
  {
    id: 'RateLimited',
    name: 'rate-limited users',
    over: 'functions',
    query: {
      filterStatements: ['event = "ws.rate_limited"'],
      statsStatements: ['count(*) as refused by username'],
      sort: 'refused desc',
      limit: 20,
    },
  },
  {
    id: 'DeliveryFailuresQuery',
    name: 'delivery failures',
    over: 'functions',
    query: {
      filterStatements: ['event = "delivery.failed"'],
      statsStatements: [
        'sum(failed) as failed, sum(delivered) as delivered, count(*) as payloads by room, errorName',
      ],
      sort: 'failed desc',
      limit: 50,
    },
  },
  // Three kinds of failure lines: ours (`level: "error"`), the runtime's for an uncaught
  // error (`level: "ERROR"`, the error under `message`), and Lambda's report of an
  // invocation that timed out or was killed (`platform.report`, `record.status`).
  {
    id: 'Errors',
    name: 'errors',
    over: 'functions',
    query: {
      fields: [
        '@timestamp',
        '@log',
        'event',
        'route',
        'errorName',
        'message.errorType',
        'message.errorMessage',
        'record.status',
        'record.errorType',
      ],
      filterStatements: [
        'level = "error" or (level = "ERROR" and message.errorMessage != "Unauthorized") or ' +
          '(type = "platform.report" and record.status != "success")',
      ],
      sort: '@timestamp desc',
      limit: 100,
    },
  },
];

/**
 * The saved Logs Insights queries an operator runs when an alarm fires (named in the alarms'
 * descriptions), under `{stack}/{name}`: over every function's audit lines, and "top senders"
 * over the WebSocket stage's access log. Meanings and responses: docs/operations.md.
 */
export function savedQueries(
  scope: Construct,
  logGroups: logs.ILogGroup[],
  webSocketAccessLogs: logs.ILogGroup,
): logs.QueryDefinition[] {
  const stackName = Stack.of(scope).stackName;
  return QUERIES.map(
    ({ id, name, over, query }) =>
      new logs.QueryDefinition(scope, id, {
        queryDefinitionName: `${stackName}/${name}`,
        queryString: new logs.QueryString(query),
        logGroups: over === 'functions' ? logGroups : [webSocketAccessLogs],
      }),
  );
}
