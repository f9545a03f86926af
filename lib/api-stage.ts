import { AccessLogFormat } from 'aws-cdk-lib/aws-apigateway';
import * as apigw from 'aws-cdk-lib/aws-apigatewayv2';
import * as logs from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import { type CustomDomain, mapCustomDomain } from './custom-domain.ts';

export interface ApiStageProps {
  readonly throttleRatePerS: number;
  readonly throttleBurst: number;
  readonly logRetention: logs.RetentionDays;
  readonly domain?: CustomDomain | undefined;
}

export interface ApiStage<S extends apigw.IStage> {
  readonly stage: S;
  readonly accessLogs: logs.LogGroup;
  readonly domainName: apigw.DomainName | undefined;
}

/**
 * The stage both APIs publish: auto-deployed, throttled, with one JSON access-log line per
 * request in its own log group (`AccessLogs` in `scope`), and the custom domain mapped at its
 * root. `make` builds the API's own kind of stage from those options.
 */
export function apiStage<S extends apigw.IStage>(
  scope: Construct,
  api: apigw.IApi,
  props: ApiStageProps,
  accessLogFormat: string,
  make: (options: apigw.StageOptions) => S,
): ApiStage<S> {
  const accessLogs = new logs.LogGroup(scope, 'AccessLogs', { retention: props.logRetention });
  const stage = make({
    autoDeploy: true,
    throttle: { rateLimit: props.throttleRatePerS, burstLimit: props.throttleBurst },
    accessLogSettings: {
      destination: new apigw.LogGroupLogDestination(accessLogs),
      format: AccessLogFormat.custom(accessLogFormat),
    },
  });
  return { stage, accessLogs, domainName: mapCustomDomain(scope, props.domain, api, stage) };
}
