import { AccessLogFormat } from 'aws-cdk-lib/aws-apigateway';
import * as apigw from 'aws-cdk-lib/aws-apigatewayv2';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { type CustomDomain, mapCustomDomain } from './custom-domain.ts';

export interface ApiEndpointProps {
  readonly throttleRatePerS: number;
  readonly throttleBurst: number;
  readonly logRetention: logs.RetentionDays;
  readonly domain?: CustomDomain | undefined;
}

/** What differs between the two APIs: their kind of API and stage, and what one log line holds. */
export interface ApiEndpointParts<A extends apigw.IApi, S extends apigw.IStage> {
  readonly api: (scope: Construct) => A;
  readonly stage: (scope: Construct, api: A, options: apigw.StageOptions) => S;
  /** One JSON object per request, of `$context` variables. */
  readonly accessLogFormat: string;
}

/**
 * An API and the one stage it publishes: auto-deployed, throttled, with one JSON access-log
 * line per request in its own log group, and the custom domain mapped at its root. Both APIs
 * are built by it, so their stages cannot drift apart.
 */
export abstract class ApiEndpoint<A extends apigw.IApi, S extends apigw.IStage> extends Construct {
  readonly api: A;
  readonly stage: S;
  readonly accessLogs: logs.LogGroup;
  readonly domainName: apigw.DomainName | undefined;
  /** The custom domain as configured (a literal, where `domainName.name` is a reference). */
  readonly domain: string | undefined;

  protected constructor(
    scope: Construct,
    id: string,
    props: ApiEndpointProps,
    parts: ApiEndpointParts<A, S>,
  ) {
    super(scope, id);
    this.api = parts.api(this);
    this.accessLogs = new logs.LogGroup(this, 'AccessLogs', { retention: props.logRetention });
    this.domain = props.domain?.name;
    this.stage = parts.stage(this, this.api, {
      autoDeploy: true,
      throttle: { rateLimit: props.throttleRatePerS, burstLimit: props.throttleBurst },
      accessLogSettings: {
        destination: new apigw.LogGroupLogDestination(this.accessLogs),
        format: AccessLogFormat.custom(parts.accessLogFormat),
      },
    });
    this.domainName = mapCustomDomain(this, props.domain, this.api, this.stage);
  }
}
