import { Stack } from 'aws-cdk-lib';
import * as logs from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';

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
  const query = (id: string, name: string, groups: logs.ILogGroup[], queryString: logs.QueryString) =>
    new logs.QueryDefinition(scope, id, {
      queryDefinitionName: `${stackName}/${name}`,
      queryString,
      logGroups: groups,
    });
  return [
    query(
      'FailedLoginsByIp',
      'failed logins by IP',
      logGroups,
      new logs.QueryString({
        filterStatements: ['event = "auth.login_failed"'],
        statsStatements: ['count(*) as failures, count_distinct(username) as usernames by ip'],
        sort: 'failures desc',
        limit: 50,
      }),
    ),
    query(
      'DenialsByReason',
      'denials by reason',
      logGroups,
      new logs.QueryString({
        filterStatements: ['event in ["ws.denied", "auth.denied"]'],
        statsStatements: ['count(*) as denials by event, reason'],
        sort: 'denials desc',
        limit: 50,
      }),
    ),
    query(
      'Blocks',
      'who was blocked and why',
      logGroups,
      new logs.QueryString({
        fields: ['time', 'event', 'username', 'ip', 'reason', 'durationS', 'by'],
        filterStatements: ['event in ["user.blocked", "ip.blocked", "user.unblocked", "ip.unblocked"]'],
        sort: 'time desc',
        limit: 200,
      }),
    ),
    query(
      'RoomAccess',
      'room access',
      logGroups,
      new logs.QueryString({
        fields: ['time', 'event', 'username', 'room', 'reason', 'access', 'by', 'count'],
        filterStatements: ['event in ["room.denied", "room.granted", "room.grant_revoked"]'],
        sort: 'time desc',
        limit: 200,
      }),
    ),
    query(
      'TopSenders',
      'top senders',
      [webSocketAccessLogs],
      new logs.QueryString({
        filterStatements: ['routeKey = "$default"'],
        statsStatements: [
          'count(*) as frames, count_distinct(connectionId) as sockets by username, principal',
        ],
        sort: 'frames desc',
        limit: 20,
      }),
    ),
    query(
      'RateLimited',
      'rate-limited users',
      logGroups,
      new logs.QueryString({
        filterStatements: ['event = "ws.rate_limited"'],
        statsStatements: ['count(*) as refused by username'],
        sort: 'refused desc',
        limit: 20,
      }),
    ),
    query(
      'DeliveryFailuresQuery',
      'delivery failures',
      logGroups,
      new logs.QueryString({
        filterStatements: ['event = "delivery.failed"'],
        statsStatements: [
          'sum(failed) as failed, sum(delivered) as delivered, count(*) as payloads by room, errorName',
        ],
        sort: 'failed desc',
        limit: 50,
      }),
    ),
    query(
      'Errors',
      'errors',
      logGroups,
      // Three kinds of failure lines: ours (`level: "error"`), the runtime's for an uncaught
      // error (`level: "ERROR"`, the error under `message`), and Lambda's report of an
      // invocation that timed out or was killed (`platform.report`, `record.status`).
      new logs.QueryString({
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
      }),
    ),
  ];
}
