import { type CfnElement, Stack, Validations } from 'aws-cdk-lib';
import * as apigw from 'aws-cdk-lib/aws-apigatewayv2';
import type { IConstruct } from 'constructs';
import { TABLE_KEYS, TABLES } from '../lambdas/core/tables.ts';
import type { RealtimeStack } from './realtime-stack.ts';
import { WS_STAGE } from './websocket-api.ts';

/**
 * Every cdk-nag (AwsSolutions) finding accepted on purpose, in one place, each with the
 * reason a reviewer can check against the template. Anything not listed here fails synth.
 */
export function acknowledgeFindings(stack: RealtimeStack): void {
  acknowledgeRouteAuthorization(stack);
  acknowledgeStorage(stack);
  acknowledgeFunctions(stack);
  acknowledgeOperatorQueues(stack);
  acknowledgeAccountRole(stack);
}

/** APIG4: the routes whose tokens are verified by their handlers, not by API Gateway. */
function acknowledgeRouteAuthorization(stack: RealtimeStack): void {
  accept(
    routes(stack.http.api),
    'AwsSolutions-APIG4',
    "API Gateway's HTTP JWT authorizer cannot verify EdDSA tokens, so each protected route verifies the " +
      'access token in its handler (issuer, audience, algorithm pinned); register, login, refresh, JWKS and ' +
      'health are public by the spec.',
  );
  accept(
    routes(stack.webSocket.api).filter((route) => route.routeKey !== '$connect'),
    'AwsSolutions-APIG4',
    'WebSocket APIs take an authorizer on $connect only; $default and $disconnect events belong to a ' +
      'connection the $connect authorizer admitted, and handlers re-check blocks and revocations.',
  );
}

/** DDB3 and SMG4: short-lived tables without point-in-time recovery, keys rotated by our own resource. */
function acknowledgeStorage(stack: RealtimeStack): void {
  for (const key of TABLE_KEYS.filter((key) => !TABLES[key].durable)) {
    accept(
      [stack.storage.tables[key]],
      'AwsSolutions-DDB3',
      `The ${key} table holds short-lived TTL rows that the system rebuilds or that expire within hours ` +
        '(point-in-time recovery would restore stale counters, sockets and blocks); the durable users and ' +
        'sessions tables have it.',
    );
  }
  accept(
    [stack.keys.privateSecret, stack.keys.publicSecret],
    'AwsSolutions-SMG4',
    'The signing keys are rotated by the SigningKeys custom resource (keyRotation context key, see ' +
      'docs/operations.md), which pre-publishes the next key and keeps retired keys until their tokens ' +
      'expire; a Secrets Manager rotation schedule would bypass that.',
  );
}

/** IAM5 and L1: the @connections grants of the functions that manage sockets, the pinned runtime. */
function acknowledgeFunctions(stack: RealtimeStack): void {
  const wsApiId = Stack.of(stack).getLogicalId(stack.webSocket.api.node.defaultChild as CfnElement);
  const roles = stack.functions.all.flatMap((fn) => (fn.role ? [fn.role] : []));
  for (const method of ['POST', 'GET', 'DELETE']) {
    accept(
      roles,
      `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:execute-api:<AWS::Region>:<AWS::AccountId>:<${wsApiId}>/${WS_STAGE}/${method}/@connections/*]`,
      'Connection IDs exist only at run time; the grant is limited to this API, this stage and one ' +
        '@connections method, for the functions whose manifest entry says manageConnections.',
    );
  }
  const keysGenerator = stack.keys.node.tryFindChild('Generator');
  accept(
    [...stack.functions.all, ...(keysGenerator ? [keysGenerator] : [])],
    'AwsSolutions-L1',
    'Every function runs on Node.js 22 LTS, the runtime the bundles target and the test suite runs against ' +
      '(lib/handler-function.ts RUNTIME); moving to a newer runtime is a deliberate change made there, once.',
  );
}

/** SQS3: the queues where failed work ends, read by an operator. */
function acknowledgeOperatorQueues(stack: RealtimeStack): void {
  accept(
    [stack.sweeps.failures],
    'AwsSolutions-SQS3',
    "This queue is the sweeper's Lambda on-failure destination: it is itself where failed sweeps end, read by " +
      'an operator after the SweepFailures alarm, never consumed by code, so a dead-letter queue behind it would ' +
      'never receive anything.',
  );
  accept(
    [stack.fanout.deadLetters],
    'AwsSolutions-SQS3',
    "This queue is the fan-out queue's dead-letter queue: jobs end here after 5 receives, read by an operator " +
      'after the FanoutDeadLetters alarm; a dead-letter queue of its own would never receive anything.',
  );
}

/** IAM4: the account-wide role API Gateway writes WebSocket access logs with. */
function acknowledgeAccountRole(stack: RealtimeStack): void {
  const accountRole = stack.webSocket.node.tryFindChild('ApiGatewayCloudWatchRole');
  accept(
    accountRole ? [accountRole] : [],
    'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]',
    "AWS's own policy for the account-wide role API Gateway needs to write WebSocket stage access logs; the " +
      'role is shared by every REST and WebSocket API of the account, so it cannot name our log group alone.',
  );
}

function routes(api: IConstruct): apigw.CfnRoute[] {
  return api.node.findAll().filter((child): child is apigw.CfnRoute => child instanceof apigw.CfnRoute);
}

/** Accepts one finding on each construct, for the reason given. */
function accept(constructs: readonly IConstruct[], id: string, reason: string): void {
  for (const construct of constructs) Validations.of(construct).acknowledge({ id, reason });
}
