import { Duration, Stack } from 'aws-cdk-lib';
import type * as apigw from 'aws-cdk-lib/aws-apigatewayv2';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import type { AuditEvent } from '../lambdas/core/audit.ts';
import type { TableKey } from '../lambdas/core/tables.ts';
import type { HandlerFunction } from './handler-function.ts';
import {
  type AlarmSpec,
  DELIBERATE_401_METRIC,
  type GroupedFunction,
  lambdaAlarms,
  tableAlarms,
  throwsUnauthorized,
} from './platform-alarms.ts';
import { savedQueries } from './saved-queries.ts';

/** Audit events counted as metrics (dimension `Event`): a closed list, so the metric's cardinality is bounded. */
export const COUNTED_EVENTS = [
  'auth.login',
  'auth.login_failed',
  'auth.refresh_reuse',
  'auth.denied',
  'ws.connect',
  'ws.denied',
  'ws.rate_limited',
  'ws.closed_by_server',
  'user.blocked',
  'ip.blocked',
  'token.revoked',
  'delivery.failed',
] as const satisfies readonly AuditEvent[];

export type CountedEvent = (typeof COUNTED_EVENTS)[number];

export interface ObservabilityProps {
  /** Every function, the key generator included: metric filters and saved queries. */
  readonly functions: readonly HandlerFunction[];
  /** The manifest's functions by group: the Lambda alarms. */
  readonly groups: readonly GroupedFunction[];
  readonly tables: Readonly<Record<TableKey, dynamodb.ITable>>;
  /** DynamoDB operations in use per table (CloudWatch's `Operation` dimension). */
  readonly tableOperations: Partial<Record<TableKey, readonly string[]>>;
  /** The sweeper's on-failure destination. */
  readonly sweepFailures: sqs.IQueue;
  /** The fan-out queue's dead-letter queue. */
  readonly fanoutDeadLetters: sqs.IQueue;
  readonly httpApi: apigw.HttpApi;
  readonly httpAccessLogs: logs.ILogGroup;
  readonly webSocketApi: apigw.WebSocketApi;
  readonly webSocketStage: string;
  readonly webSocketAccessLogs: logs.ILogGroup;
  readonly alarmEmail: string | undefined;
  /** Failed logins in 5 minutes, all users and IPs together, that raise the alarm. */
  readonly loginFailureAlarmThreshold: number;
}

/**
 * What an operator watches: metric filters over the JSON audit lines of every function,
 * alarms on auth failures, denials, rate-limit hits, blocks and errors (to an SNS topic),
 * saved Logs Insights queries, and one dashboard. Meanings and responses: docs/operations.md.
 */
export class Observability extends Construct {
  readonly namespace: string;
  readonly dashboard: cloudwatch.Dashboard;
  readonly alarmTopic: sns.Topic;
  readonly alarms: readonly cloudwatch.Alarm[];
  readonly queries: readonly logs.QueryDefinition[];

  constructor(scope: Construct, id: string, props: ObservabilityProps) {
    super(scope, id);
    // Per stack, so two deployments in one account never share a metric.
    this.namespace = `JwtRealtime/${Stack.of(this).stackName}`;
    const logGroups = props.functions.map((fn) => fn.functionLogGroup);

    for (const fn of props.functions) {
      fn.functionLogGroup.addMetricFilter('AuditEvents', {
        filterPattern: logs.FilterPattern.any(
          ...COUNTED_EVENTS.map((event) => logs.FilterPattern.stringValue('$.event', '=', event)),
        ),
        metricNamespace: this.namespace,
        metricName: 'AuditEvents',
        metricValue: '1',
        dimensions: { Event: '$.event' },
        unit: cloudwatch.Unit.COUNT,
      });
      // Our own audit lines at level "error" (a store failure, a failed delivery). Crashes,
      // timeouts and out-of-memory kills are counted by Lambda itself (the group alarms): the
      // runtime's "ERROR" lines would also count every deliberate 401 of the authorizer.
      fn.functionLogGroup.addMetricFilter('HandlerErrors', {
        filterPattern: logs.FilterPattern.stringValue('$.level', '=', 'error'),
        metricNamespace: this.namespace,
        metricName: 'HandlerErrors',
        metricValue: '1',
        defaultValue: 0,
        unit: cloudwatch.Unit.COUNT,
      });
    }
    for (const { fn } of props.groups.filter((g) => throwsUnauthorized(g.spec))) {
      fn.functionLogGroup.addMetricFilter('DeliberateUnauthorized', {
        filterPattern: logs.FilterPattern.all(
          logs.FilterPattern.stringValue('$.level', '=', 'ERROR'),
          logs.FilterPattern.stringValue('$.message.errorMessage', '=', 'Unauthorized'),
        ),
        metricNamespace: this.namespace,
        metricName: DELIBERATE_401_METRIC,
        metricValue: '1',
        defaultValue: 0,
        unit: cloudwatch.Unit.COUNT,
      });
    }
    // 5xx only: a WebSocket integration that answers 4xx (a refused handshake, the connection
    // cap's 403) is doing its job, yet API Gateway's IntegrationError counts it.
    props.webSocketAccessLogs.addMetricFilter('ServerErrors', {
      filterPattern: logs.FilterPattern.stringValue('$.status', '=', '5*'),
      metricNamespace: this.namespace,
      metricName: 'WebSocketServerErrors',
      metricValue: '1',
      defaultValue: 0,
      unit: cloudwatch.Unit.COUNT,
    });

    const event = (name: CountedEvent, label: string = name) => this.eventMetric(name, label);
    const handlerErrors = new cloudwatch.Metric({
      namespace: this.namespace,
      metricName: 'HandlerErrors',
      statistic: 'Sum',
      period: Duration.minutes(5),
      label: 'handler errors',
    });
    const wsMetric = (metricName: string, label: string) =>
      new cloudwatch.Metric({
        namespace: 'AWS/ApiGateway',
        metricName,
        dimensionsMap: { ApiId: props.webSocketApi.apiId, Stage: props.webSocketStage },
        statistic: 'Sum',
        period: Duration.minutes(5),
        label,
      });

    this.alarmTopic = new sns.Topic(this, 'AlarmTopic', {
      displayName: 'JWT realtime alarms',
      enforceSSL: true,
    });
    if (props.alarmEmail)
      this.alarmTopic.addSubscription(new subscriptions.EmailSubscription(props.alarmEmail));

    const specs: AlarmSpec[] = [
      {
        id: 'LoginFailures',
        description:
          'Many failed logins in 5 minutes: password guessing or credential stuffing. Run the "failed logins by IP" query.',
        metric: event('auth.login_failed'),
        threshold: props.loginFailureAlarmThreshold,
      },
      {
        id: 'RefreshTokenReuse',
        description:
          'A spent refresh token was presented again: a stolen token or a client bug. The family is already revoked.',
        metric: event('auth.refresh_reuse'),
        threshold: 1,
      },
      {
        id: 'HandshakeDenials',
        description: 'Many refused WebSocket handshakes in 5 minutes. Run the "denials by reason" query.',
        metric: event('ws.denied'),
        threshold: 100,
      },
      {
        id: 'RateLimitHits',
        description:
          'Many frames refused by the per-user rate limit in 5 minutes. Run the "top senders" query.',
        metric: event('ws.rate_limited'),
        threshold: 100,
      },
      {
        id: 'UsersBlocked',
        description: 'A user was blocked (automatically or by an admin). Run the "blocks" query.',
        metric: event('user.blocked'),
        threshold: 1,
      },
      {
        id: 'DeliveryFailures',
        description:
          'Fan-out could not reach some members even after retries (429 or 5xx from @connections): they missed messages. Run the "delivery failures" query.',
        metric: event('delivery.failed'),
        threshold: 1,
      },
      {
        id: 'HandlerErrors',
        description:
          'A function caught a failure and logged it at level error (crashes and timeouts: the group Errors alarms). Run the "errors" query.',
        metric: handlerErrors,
        threshold: 1,
      },
      {
        id: 'HttpServerErrors',
        description: 'The HTTP API answered 5xx.',
        metric: props.httpApi.metricServerError({ period: Duration.minutes(5), statistic: 'Sum' }),
        threshold: 5,
      },
      {
        id: 'WebSocketServerErrors',
        description:
          'WebSocket requests answered 5xx (a function crashed, timed out or could not be invoked), from the ' +
          "stage's access log. Refused handshakes (4xx) do not count. See the group Errors alarms.",
        metric: new cloudwatch.Metric({
          namespace: this.namespace,
          metricName: 'WebSocketServerErrors',
          statistic: 'Sum',
          period: Duration.minutes(5),
          label: 'WebSocket 5xx',
        }),
        threshold: 5,
      },
      {
        id: 'SweepFailures',
        description:
          'A sweep failed or never ran (an error, a timeout, or the previous sweep still running): Lambda put ' +
          'its record in the SweepFailuresQueueUrl queue. Read it, then the sweeper log group.',
        metric: props.sweepFailures.metricApproximateNumberOfMessagesVisible({
          period: Duration.minutes(5),
          statistic: 'Maximum',
        }),
        threshold: 1,
      },
      {
        id: 'FanoutDeadLetters',
        description:
          "A big room's delivery job failed 5 times before posting (the store or the queue failing) and is in " +
          'the FanoutDeadLetterQueueUrl queue: its members missed that message. Read it, then the fanout-worker ' +
          'log group ("errors" query).',
        metric: props.fanoutDeadLetters.metricApproximateNumberOfMessagesVisible({
          period: Duration.minutes(5),
          statistic: 'Maximum',
        }),
        threshold: 1,
      },
      ...lambdaAlarms(this.namespace, props.groups),
      ...tableAlarms(props.tables, props.tableOperations),
    ];
    this.alarms = specs.map((spec) => {
      const alarm = new cloudwatch.Alarm(this, spec.id, {
        alarmDescription: spec.description,
        metric: spec.metric,
        threshold: spec.threshold,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
      alarm.addAlarmAction(new actions.SnsAction(this.alarmTopic));
      return alarm;
    });

    this.queries = savedQueries(this, logGroups, props.webSocketAccessLogs);

    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      defaultInterval: Duration.hours(6),
    });
    const fnMetrics = (make: (fn: HandlerFunction) => cloudwatch.IMetric) => props.functions.map(make);
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Logins and handshakes',
        width: 8,
        left: [
          event('auth.login', 'logins'),
          event('auth.login_failed', 'failed logins'),
          event('ws.connect', 'connects'),
        ],
        right: [event('ws.denied', 'handshakes denied'), event('auth.denied', 'HTTP requests denied')],
      }),
      new cloudwatch.GraphWidget({
        title: 'Abuse signals',
        width: 8,
        left: [event('ws.rate_limited', 'frames rate-limited')],
        right: [
          event('user.blocked', 'users blocked'),
          event('ip.blocked', 'IPs blocked'),
          event('auth.refresh_reuse', 'refresh reuse'),
          event('token.revoked', 'revocations'),
          event('ws.closed_by_server', 'sockets closed by server'),
          event('delivery.failed', 'payloads not delivered to all'),
        ],
      }),
      new cloudwatch.AlarmStatusWidget({ title: 'Alarms', width: 8, alarms: [...this.alarms] }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'HTTP API',
        width: 8,
        left: [
          props.httpApi.metricCount({ period: Duration.minutes(5), statistic: 'Sum' }),
          props.httpApi.metricClientError({ period: Duration.minutes(5), statistic: 'Sum' }),
          props.httpApi.metricServerError({ period: Duration.minutes(5), statistic: 'Sum' }),
        ],
        right: [props.httpApi.metricLatency({ period: Duration.minutes(5), statistic: 'p99' })],
      }),
      new cloudwatch.GraphWidget({
        title: 'WebSocket API',
        width: 8,
        left: [wsMetric('ConnectCount', 'connects'), wsMetric('MessageCount', 'messages')],
        right: [
          wsMetric('ClientError', 'client errors'),
          wsMetric('IntegrationError', 'integration errors'),
          wsMetric('ExecutionError', 'execution errors'),
        ],
      }),
      new cloudwatch.GraphWidget({
        title: 'Handler errors',
        width: 8,
        left: [handlerErrors],
        right: fnMetrics((fn) => fn.metricThrottles({ period: Duration.minutes(5), label: fn.node.id })),
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Function duration p99 (ms)',
        width: 12,
        left: fnMetrics((fn) => fn.metricDuration({ statistic: 'p99', label: fn.node.id })),
      }),
      new cloudwatch.GraphWidget({
        title: 'Function invocations',
        width: 12,
        left: fnMetrics((fn) => fn.metricInvocations({ period: Duration.minutes(5), label: fn.node.id })),
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.LogQueryWidget({
        title: 'Latest denials and blocks',
        width: 24,
        logGroupNames: logGroups.map((g) => g.logGroupName),
        queryLines: [
          'fields time, event, username, ip, reason',
          'filter event in ["ws.denied", "auth.denied", "user.blocked", "ip.blocked", "auth.refresh_reuse"]',
          'sort @timestamp desc',
          'limit 50',
        ],
      }),
    );
  }

  /** The count of one audit event, summed over 5 minutes across every function. */
  eventMetric(event: CountedEvent, label: string = event): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: this.namespace,
      metricName: 'AuditEvents',
      dimensionsMap: { Event: event },
      statistic: 'Sum',
      period: Duration.minutes(5),
      label,
    });
  }

  /** The console address of the dashboard. */
  get dashboardUrl(): string {
    const region = Stack.of(this).region;
    return `https://${region}.console.aws.amazon.com/cloudwatch/home?region=${region}#dashboards:name=${this.dashboard.dashboardName}`;
  }
}
