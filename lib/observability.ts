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

const FIVE_MINUTES = Duration.minutes(5);

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
    this.addMetricFilters(props);
    this.alarmTopic = this.createAlarmTopic(props.alarmEmail);
    this.alarms = this.createAlarms([
      ...this.auditAlarms(props.loginFailureAlarmThreshold),
      ...this.serverErrorAlarms(props.httpApi),
      ...queueAlarms(props.sweepFailures, props.fanoutDeadLetters),
      ...lambdaAlarms(this.namespace, props.groups),
      ...tableAlarms(props.tables, props.tableOperations),
    ]);
    const logGroups = props.functions.map((fn) => fn.functionLogGroup);
    this.queries = savedQueries(this, logGroups, props.webSocketAccessLogs);
    this.dashboard = this.createDashboard(props, logGroups);
  }

  /** Counts our JSON log lines: audit events, handler errors, the authorizer's deliberate 401s, WebSocket 5xx. */
  private addMetricFilters(props: ObservabilityProps): void {
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
      this.countLines(
        fn.functionLogGroup,
        'HandlerErrors',
        'HandlerErrors',
        logs.FilterPattern.stringValue('$.level', '=', 'error'),
      );
    }
    for (const { fn } of props.groups.filter((g) => throwsUnauthorized(g.spec))) {
      this.countLines(
        fn.functionLogGroup,
        'DeliberateUnauthorized',
        DELIBERATE_401_METRIC,
        logs.FilterPattern.all(
          logs.FilterPattern.stringValue('$.level', '=', 'ERROR'),
          logs.FilterPattern.stringValue('$.message.errorMessage', '=', 'Unauthorized'),
        ),
      );
    }
    // 5xx only: a WebSocket integration that answers 4xx (a refused handshake, the connection
    // cap's 403) is doing its job, yet API Gateway's IntegrationError counts it.
    this.countLines(
      props.webSocketAccessLogs,
      'ServerErrors',
      'WebSocketServerErrors',
      logs.FilterPattern.stringValue('$.status', '=', '5*'),
    );
  }

  /** A metric of this namespace counting the lines of `group` that match (0 when none). */
  private countLines(
    group: logs.ILogGroup,
    id: string,
    metricName: string,
    filterPattern: logs.IFilterPattern,
  ): void {
    group.addMetricFilter(id, {
      filterPattern,
      metricNamespace: this.namespace,
      metricName,
      metricValue: '1',
      defaultValue: 0,
      unit: cloudwatch.Unit.COUNT,
    });
  }

  private createAlarmTopic(alarmEmail: string | undefined): sns.Topic {
    const topic = new sns.Topic(this, 'AlarmTopic', {
      displayName: 'JWT realtime alarms',
      enforceSSL: true,
    });
    if (alarmEmail) topic.addSubscription(new subscriptions.EmailSubscription(alarmEmail));
    return topic;
  }

  private createAlarms(specs: readonly AlarmSpec[]): cloudwatch.Alarm[] {
    return specs.map((spec) => {
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
  }

  /** Alarms on audit events: guessing, token reuse, denials, rate limits, blocks, lost deliveries. */
  private auditAlarms(loginFailureThreshold: number): AlarmSpec[] {
    const on = (id: string, event: CountedEvent, threshold: number, description: string): AlarmSpec => ({
      id,
      description,
      metric: this.eventMetric(event),
      threshold,
    });
    return [
      on(
        'LoginFailures',
        'auth.login_failed',
        loginFailureThreshold,
        'Many failed logins in 5 minutes: password guessing or credential stuffing. Run the "failed logins by IP" query.',
      ),
      on(
        'RefreshTokenReuse',
        'auth.refresh_reuse',
        1,
        'A spent refresh token was presented again: a stolen token or a client bug. The family is already revoked.',
      ),
      on(
        'HandshakeDenials',
        'ws.denied',
        100,
        'Many refused WebSocket handshakes in 5 minutes. Run the "denials by reason" query.',
      ),
      on(
        'RateLimitHits',
        'ws.rate_limited',
        100,
        'Many frames refused by the per-user rate limit in 5 minutes. Run the "top senders" query.',
      ),
      on(
        'UsersBlocked',
        'user.blocked',
        1,
        'A user was blocked (automatically or by an admin). Run the "who was blocked and why" query.',
      ),
      on(
        'DeliveryFailures',
        'delivery.failed',
        1,
        'Fan-out could not reach some members even after retries (429 or 5xx from @connections): they missed messages. Run the "delivery failures" query.',
      ),
    ];
  }

  /** Alarms on failures the code logged or the APIs answered with 5xx. */
  private serverErrorAlarms(httpApi: apigw.HttpApi): AlarmSpec[] {
    return [
      {
        id: 'HandlerErrors',
        description:
          'A function caught a failure and logged it at level error (crashes and timeouts: the group Errors alarms). Run the "errors" query.',
        metric: this.ownMetric('HandlerErrors', 'handler errors'),
        threshold: 1,
      },
      {
        id: 'HttpServerErrors',
        description: 'The HTTP API answered 5xx.',
        metric: httpApi.metricServerError({ period: FIVE_MINUTES, statistic: 'Sum' }),
        threshold: 5,
      },
      {
        id: 'WebSocketServerErrors',
        description:
          'WebSocket requests answered 5xx (a function crashed, timed out or could not be invoked), from the ' +
          "stage's access log. Refused handshakes (4xx) do not count. See the group Errors alarms.",
        metric: this.ownMetric('WebSocketServerErrors', 'WebSocket 5xx'),
        threshold: 5,
      },
    ];
  }

  private createDashboard(
    props: ObservabilityProps,
    logGroups: readonly logs.ILogGroup[],
  ): cloudwatch.Dashboard {
    const dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      defaultInterval: Duration.hours(6),
    });
    dashboard.addWidgets(...this.securityRow());
    dashboard.addWidgets(...this.apiRow(props));
    dashboard.addWidgets(...this.functionsRow(props.functions));
    dashboard.addWidgets(
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
    return dashboard;
  }

  /** Logins and handshakes, abuse signals, and the state of every alarm. */
  private securityRow(): cloudwatch.IWidget[] {
    const event = (name: CountedEvent, label: string) => this.eventMetric(name, label);
    return [
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
    ];
  }

  /** Both APIs as API Gateway counts them, and the errors our handlers logged. */
  private apiRow(props: ObservabilityProps): cloudwatch.IWidget[] {
    const { httpApi } = props;
    const wsMetric = (metricName: string, label: string) =>
      new cloudwatch.Metric({
        namespace: 'AWS/ApiGateway',
        metricName,
        dimensionsMap: { ApiId: props.webSocketApi.apiId, Stage: props.webSocketStage },
        statistic: 'Sum',
        period: FIVE_MINUTES,
        label,
      });
    return [
      new cloudwatch.GraphWidget({
        title: 'HTTP API',
        width: 8,
        left: [
          httpApi.metricCount({ period: FIVE_MINUTES, statistic: 'Sum' }),
          httpApi.metricClientError({ period: FIVE_MINUTES, statistic: 'Sum' }),
          httpApi.metricServerError({ period: FIVE_MINUTES, statistic: 'Sum' }),
        ],
        right: [httpApi.metricLatency({ period: FIVE_MINUTES, statistic: 'p99' })],
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
        left: [this.ownMetric('HandlerErrors', 'handler errors')],
        right: props.functions.map((fn) => fn.metricThrottles({ period: FIVE_MINUTES, label: fn.node.id })),
      }),
    ];
  }

  /** Duration and invocations of every function. */
  private functionsRow(functions: readonly HandlerFunction[]): cloudwatch.IWidget[] {
    return [
      new cloudwatch.GraphWidget({
        title: 'Function duration p99 (ms)',
        width: 12,
        left: functions.map((fn) => fn.metricDuration({ statistic: 'p99', label: fn.node.id })),
      }),
      new cloudwatch.GraphWidget({
        title: 'Function invocations',
        width: 12,
        left: functions.map((fn) => fn.metricInvocations({ period: FIVE_MINUTES, label: fn.node.id })),
      }),
    ];
  }

  /** A count of this namespace without dimensions (a metric filter above), summed over 5 minutes. */
  private ownMetric(metricName: string, label: string): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: this.namespace,
      metricName,
      statistic: 'Sum',
      period: FIVE_MINUTES,
      label,
    });
  }

  /** The count of one audit event, summed over 5 minutes across every function. */
  eventMetric(event: CountedEvent, label: string = event): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: this.namespace,
      metricName: 'AuditEvents',
      dimensionsMap: { Event: event },
      statistic: 'Sum',
      period: FIVE_MINUTES,
      label,
    });
  }

  /** The console address of the dashboard. */
  get dashboardUrl(): string {
    const region = Stack.of(this).region;
    return `https://${region}.console.aws.amazon.com/cloudwatch/home?region=${region}#dashboards:name=${this.dashboard.dashboardName}`;
  }
}

/** Alarms on the queues where failed work ends: sweeps and big rooms' delivery jobs. */
function queueAlarms(sweepFailures: sqs.IQueue, fanoutDeadLetters: sqs.IQueue): AlarmSpec[] {
  const waiting = (queue: sqs.IQueue) =>
    queue.metricApproximateNumberOfMessagesVisible({ period: FIVE_MINUTES, statistic: 'Maximum' });
  return [
    {
      id: 'SweepFailures',
      description:
        'A sweep failed or never ran (an error, a timeout, or the previous sweep still running): Lambda put ' +
        'its record in the SweepFailuresQueueUrl queue. Read it, then the sweeper log group.',
      metric: waiting(sweepFailures),
      threshold: 1,
    },
    {
      id: 'FanoutDeadLetters',
      description:
        "A big room's delivery job failed 5 times before posting (the store or the queue failing) and is in " +
        'the FanoutDeadLetterQueueUrl queue: its members missed that message. Read it, then the fanout-worker ' +
        'log group ("errors" query).',
      metric: waiting(fanoutDeadLetters),
      threshold: 1,
    },
  ];
}
