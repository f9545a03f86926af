import { type CfnElement, Stack, Validations } from 'aws-cdk-lib';
import * as apigw from 'aws-cdk-lib/aws-apigatewayv2';
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
  for (const route of stack.http.api.node.findAll()) {
    if (route instanceof apigw.CfnRoute) {
      Validations.of(route).acknowledge({
        id: 'AwsSolutions-APIG4',
        reason:
          "API Gateway's HTTP JWT authorizer cannot verify EdDSA tokens, so each protected route verifies the " +
          'access token in its handler (issuer, audience, algorithm pinned); register, login, refresh, JWKS and ' +
          'health are public by the spec.',
      });
    }
  }
  for (const route of stack.webSocket.api.node.findAll()) {
    if (route instanceof apigw.CfnRoute && route.routeKey !== '$connect') {
      Validations.of(route).acknowledge({
        id: 'AwsSolutions-APIG4',
        reason:
          'WebSocket APIs take an authorizer on $connect only; $default and $disconnect events belong to a ' +
          'connection the $connect authorizer admitted, and handlers re-check blocks and revocations.',
      });
    }
  }
}

/** DDB3 and SMG4: short-lived tables without point-in-time recovery, keys rotated by our own resource. */
function acknowledgeStorage(stack: RealtimeStack): void {
  for (const key of TABLE_KEYS) {
    if (TABLES[key].durable) continue;
    Validations.of(stack.storage.tables[key]).acknowledge({
      id: 'AwsSolutions-DDB3',
      reason:
        `The ${key} table holds short-lived TTL rows that the system rebuilds or that expire within hours ` +
        '(point-in-time recovery would restore stale counters, sockets and blocks); the durable users and ' +
        'sessions tables have it.',
    });
  }
  for (const secret of [stack.keys.privateSecret, stack.keys.publicSecret]) {
    Validations.of(secret).acknowledge({
      id: 'AwsSolutions-SMG4',
      reason:
        'The signing keys are rotated by the SigningKeys custom resource (keyRotation context key, see ' +
        'docs/operations.md), which pre-publishes the next key and keeps retired keys until their tokens ' +
        'expire; a Secrets Manager rotation schedule would bypass that.',
    });
  }
}

/** IAM5 and L1: the @connections grants of the functions that manage sockets, the pinned runtime. */
function acknowledgeFunctions(stack: RealtimeStack): void {
  const wsApiId = Stack.of(stack).getLogicalId(stack.webSocket.api.node.defaultChild as CfnElement);
  for (const fn of stack.functions.all) {
    if (!fn.role) continue;
    for (const method of ['POST', 'GET', 'DELETE']) {
      Validations.of(fn.role).acknowledge({
        id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:execute-api:<AWS::Region>:<AWS::AccountId>:<${wsApiId}>/${WS_STAGE}/${method}/@connections/*]`,
        reason:
          'Connection IDs exist only at run time; the grant is limited to this API, this stage and one ' +
          '@connections method, for the functions whose manifest entry says manageConnections.',
      });
    }
  }
  const keysGenerator = stack.keys.node.tryFindChild('Generator');
  for (const fn of [...stack.functions.all, ...(keysGenerator ? [keysGenerator] : [])]) {
    Validations.of(fn).acknowledge({
      id: 'AwsSolutions-L1',
      reason:
        'Every function runs on Node.js 22 LTS, the runtime the bundles target and the test suite runs against ' +
        '(lib/handler-function.ts RUNTIME); moving to a newer runtime is a deliberate change made there, once.',
    });
  }
}

/** SQS3: the queues where failed work ends, read by an operator. */
function acknowledgeOperatorQueues(stack: RealtimeStack): void {
  Validations.of(stack.sweeps.failures).acknowledge({
    id: 'AwsSolutions-SQS3',
    reason:
      "This queue is the sweeper's Lambda on-failure destination: it is itself where failed sweeps end, read by " +
      'an operator after the SweepFailures alarm, never consumed by code, so a dead-letter queue behind it would ' +
      'never receive anything.',
  });
  Validations.of(stack.fanout.deadLetters).acknowledge({
    id: 'AwsSolutions-SQS3',
    reason:
      "This queue is the fan-out queue's dead-letter queue: jobs end here after 5 receives, read by an operator " +
      'after the FanoutDeadLetters alarm; a dead-letter queue of its own would never receive anything.',
  });
}

/** IAM4: the account-wide role API Gateway writes WebSocket access logs with. */
function acknowledgeAccountRole(stack: RealtimeStack): void {
  const accountRole = stack.webSocket.node.tryFindChild('ApiGatewayCloudWatchRole');
  if (accountRole) {
    Validations.of(accountRole).acknowledge({
      id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]',
      reason:
        "AWS's own policy for the account-wide role API Gateway needs to write WebSocket stage access logs; the " +
        'role is shared by every REST and WebSocket API of the account, so it cannot name our log group alone.',
    });
  }
}
