import { Duration, Stack } from 'aws-cdk-lib';
import * as apigw from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import type { Construct } from 'constructs';
import { CORS } from '../lambdas/edge/cors.ts';
import type { FunctionSpec } from '../lambdas/functions.ts';
import { ApiEndpoint, type ApiEndpointProps } from './api-endpoint.ts';
import type { CustomDomain } from './custom-domain.ts';
import type { HandlerFunction } from './handler-function.ts';

export type { CustomDomain } from './custom-domain.ts';

export interface HttpEndpointProps extends ApiEndpointProps {
  readonly allowedOrigins: readonly string[];
  /** A custom domain, mapped to the `$default` stage at its root. */
  readonly domain?: CustomDomain;
}

/** One JSON object per request; route keys only, never query strings or headers (tokens). */
const HTTP_ACCESS_LOG = JSON.stringify({
  requestId: '$context.requestId',
  ip: '$context.identity.sourceIp',
  time: '$context.requestTime',
  routeKey: '$context.routeKey',
  status: '$context.status',
  latencyMs: '$context.responseLatency',
  responseLength: '$context.responseLength',
  integrationError: '$context.integrationErrorMessage',
});

/**
 * The HTTP API: one `$default` stage (so paths have no stage prefix), throttled, with JSON
 * access logs, and CORS for exactly the allowed origins. Routes have no API Gateway
 * authorizer: its JWT authorizer does not take EdDSA, so handlers verify tokens themselves.
 */
export class HttpEndpoint extends ApiEndpoint<apigw.HttpApi, apigw.HttpStage> {
  constructor(scope: Construct, id: string, props: HttpEndpointProps) {
    super(scope, id, props, {
      api: (self) =>
        new apigw.HttpApi(self, 'Api', {
          apiName: `${Stack.of(self).stackName}-http`,
          description: 'JWT realtime: auth, JWKS and admin endpoints',
          createDefaultStage: false,
          corsPreflight:
            props.allowedOrigins.length > 0
              ? {
                  allowOrigins: [...props.allowedOrigins],
                  allowMethods: CORS.allowMethods.map((m) => apigw.CorsHttpMethod[m]),
                  allowHeaders: [...CORS.allowHeaders],
                  exposeHeaders: [...CORS.exposeHeaders],
                  allowCredentials: false,
                  maxAge: Duration.seconds(CORS.maxAgeS),
                }
              : undefined,
        }),
      stage: (self, httpApi, options) =>
        new apigw.HttpStage(self, 'DefaultStage', { httpApi, stageName: '$default', ...options }),
      accessLogFormat: HTTP_ACCESS_LOG,
    });
  }

  /** `https://{apiId}.execute-api.{region}.amazonaws.com`, without a trailing slash. */
  get endpoint(): string {
    return this.api.apiEndpoint;
  }

  /** What clients use: `https://{custom domain}` when there is one, else the execute-api URL. */
  get publicUrl(): string {
    return this.domain ? `https://${this.domain}` : this.endpoint;
  }

  /** Adds every `httpRoutes` entry of the manifest, one Lambda integration per function. */
  addRoutes(specs: readonly FunctionSpec[], functions: ReadonlyMap<string, HandlerFunction>): void {
    for (const spec of specs) {
      if (!spec.httpRoutes || spec.httpRoutes.length === 0) continue;
      const fn = functions.get(spec.name);
      if (!fn) throw new Error(`no function for ${spec.name}`);
      const integration = new HttpLambdaIntegration(`${fn.node.id}Integration`, fn);
      for (const routeKey of spec.httpRoutes) {
        const { method, path } = parseRouteKey(routeKey);
        this.api.addRoutes({ path, methods: [method], integration });
      }
    }
  }
}

const METHODS: Readonly<Record<string, apigw.HttpMethod>> = {
  GET: apigw.HttpMethod.GET,
  POST: apigw.HttpMethod.POST,
  PUT: apigw.HttpMethod.PUT,
  PATCH: apigw.HttpMethod.PATCH,
  DELETE: apigw.HttpMethod.DELETE,
};

/** `POST /auth/login` -> method and path; anything else is a manifest error. */
export function parseRouteKey(routeKey: string): { method: apigw.HttpMethod; path: string } {
  const match = /^([A-Z]+) (\/[A-Za-z0-9._~{}/-]*)$/.exec(routeKey);
  const method = match?.[1] ? METHODS[match[1]] : undefined;
  if (!match?.[2] || !method) throw new Error(`HTTP route ${JSON.stringify(routeKey)} is not "METHOD /path"`);
  return { method, path: match[2] };
}
