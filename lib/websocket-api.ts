import { RemovalPolicy, Stack } from 'aws-cdk-lib';
import { CfnAccount } from 'aws-cdk-lib/aws-apigateway';
import * as apigw from 'aws-cdk-lib/aws-apigatewayv2';
import { WebSocketLambdaAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import { WebSocketLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import * as iam from 'aws-cdk-lib/aws-iam';
import type { Construct } from 'constructs';
import type { FunctionSpec } from '../lambdas/functions.ts';
import { ApiEndpoint, type ApiEndpointProps } from './api-endpoint.ts';
import type { CustomDomain } from './custom-domain.ts';
import type { HandlerFunction } from './handler-function.ts';

export const WS_STAGE = 'prod';

export interface WebSocketEndpointProps extends ApiEndpointProps {
  /**
   * Set the account's API Gateway CloudWatch role. Without one in the account, a stage with
   * access logs fails to create ("CloudWatch Logs role ARN must be set in account settings").
   */
  readonly accountRole: boolean;
  /** A custom domain, mapped to the stage at its root (`wss://{name}`, no stage in the path). */
  readonly domain?: CustomDomain;
}

/**
 * One JSON object per handshake, frame and disconnect. No query string (it may carry a
 * token or ticket) and no headers: who, what, and how it ended.
 */
const WS_ACCESS_LOG = JSON.stringify({
  requestId: '$context.requestId',
  ip: '$context.identity.sourceIp',
  time: '$context.requestTime',
  connectionId: '$context.connectionId',
  eventType: '$context.eventType',
  routeKey: '$context.routeKey',
  status: '$context.status',
  // From the authorizer's context: the token's subject and username, frozen at connect.
  principal: '$context.authorizer.principalId',
  username: '$context.authorizer.username',
  authorizerError: '$context.authorizer.error',
  integrationError: '$context.integration.error',
  error: '$context.error.message',
});

/** The WebSocket API, its throttled stage with JSON access logs, and the routes of the manifest. */
export class WebSocketEndpoint extends ApiEndpoint<apigw.WebSocketApi, apigw.WebSocketStage> {
  constructor(scope: Construct, id: string, props: WebSocketEndpointProps) {
    // The custom domain is for clients only: `@connections` keeps the stage's execute-api
    // callback URL (`callbackUrl`).
    super(scope, id, props, {
      api: (self) =>
        new apigw.WebSocketApi(self, 'Api', {
          apiName: `${Stack.of(self).stackName}-ws`,
          description: 'JWT realtime: rooms and messages',
        }),
      stage: (self, webSocketApi, options) =>
        new apigw.WebSocketStage(self, 'Stage', { webSocketApi, stageName: WS_STAGE, ...options }),
      accessLogFormat: WS_ACCESS_LOG,
    });
    if (props.accountRole) this.stage.node.addDependency(this.accountLoggingRole());
  }

  /**
   * WebSocket (and REST) stages log through the account-wide API Gateway role. It is kept
   * on stack deletion: other APIs of the account may rely on it.
   */
  private accountLoggingRole(): CfnAccount {
    const role = new iam.Role(this, 'ApiGatewayCloudWatchRole', {
      assumedBy: new iam.ServicePrincipal('apigateway.amazonaws.com'),
      description: 'Account-wide role API Gateway uses to write REST and WebSocket stage logs',
      managedPolicies: [
        iam.ManagedPolicy.fromAwsManagedPolicyName('service-role/AmazonAPIGatewayPushToCloudWatchLogs'),
      ],
    });
    role.applyRemovalPolicy(RemovalPolicy.RETAIN);
    const account = new CfnAccount(this, 'ApiGatewayAccount', { cloudWatchRoleArn: role.roleArn });
    account.applyRemovalPolicy(RemovalPolicy.RETAIN);
    return account;
  }

  /** `wss://{apiId}.execute-api.{region}.amazonaws.com/{stage}` */
  get url(): string {
    return this.stage.url;
  }

  /** What clients use: `wss://{custom domain}` when there is one, else the execute-api URL. */
  get publicUrl(): string {
    return this.domain ? `wss://${this.domain}` : this.url;
  }

  /**
   * Adds the `wsRoutes` of the manifest: the REQUEST authorizer on `$connect`, `$default`
   * with a route response (so a handler's returned body reaches the caller) and `$disconnect`.
   */
  addRoutes(specs: readonly FunctionSpec[], functions: ReadonlyMap<string, HandlerFunction>): void {
    const owner = (route: NonNullable<FunctionSpec['wsRoutes']>[number]) => {
      const spec = specs.find((s) => s.wsRoutes?.includes(route));
      if (!spec) return undefined;
      const fn = functions.get(spec.name);
      if (!fn) throw new Error(`no function for ${spec.name}`);
      return fn;
    };
    const integration = (route: string, fn: HandlerFunction) =>
      new WebSocketLambdaIntegration(`${fn.node.id}${route.replace('$', '')}Integration`, fn);

    const routes: apigw.WebSocketRoute[] = [];
    const connect = owner('$connect');
    const authorizerFn = owner('authorizer');
    if (connect) {
      // Identity sources are ANDed and checked before the authorizer runs: with the CDK
      // default (the Authorization header) API Gateway itself answers 401 to every browser,
      // which sends its token in Sec-WebSocket-Protocol, and to ?token= and ?ticket=.
      // With none, every handshake reaches the authorizer, which tries each carrier in order.
      const authorizer = authorizerFn
        ? new WebSocketLambdaAuthorizer('Authorizer', authorizerFn, { identitySource: [] })
        : undefined;
      routes.push(
        this.api.addRoute('$connect', { integration: integration('connect', connect), authorizer }),
      );
    }
    const dflt = owner('$default');
    if (dflt) {
      routes.push(
        this.api.addRoute('$default', { integration: integration('default', dflt), returnResponse: true }),
      );
    }
    const disconnect = owner('$disconnect');
    if (disconnect) {
      routes.push(this.api.addRoute('$disconnect', { integration: integration('disconnect', disconnect) }));
    }
    for (const child of this.api.node.findAll()) {
      // An empty list may be refused by CloudFormation; an absent property is "no identity sources".
      if (child instanceof apigw.CfnAuthorizer) child.addPropertyDeletionOverride('IdentitySource');
    }
    // An auto-deployed stage of an API without routes cannot deploy: routes first.
    for (const route of routes) this.stage.node.addDependency(route);
  }
}
