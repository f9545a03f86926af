import * as apigw from 'aws-cdk-lib/aws-apigatewayv2';
import type * as acm from 'aws-cdk-lib/aws-certificatemanager';
import type { Construct } from 'constructs';

export interface CustomDomain {
  readonly name: string;
  readonly certificate: acm.ICertificate;
}

/**
 * A regional custom domain (TLS 1.2) mapped at its root to `stage`, as `Domain` and
 * `DomainMapping` in `scope`; `undefined` without a domain. Both APIs use it, so their
 * domains cannot drift apart.
 */
export function mapCustomDomain(
  scope: Construct,
  domain: CustomDomain | undefined,
  api: apigw.IApi,
  stage: apigw.IStage,
): apigw.DomainName | undefined {
  if (!domain) return undefined;
  const domainName = new apigw.DomainName(scope, 'Domain', {
    domainName: domain.name,
    certificate: domain.certificate,
    endpointType: apigw.EndpointType.REGIONAL,
    securityPolicy: apigw.SecurityPolicy.TLS_1_2,
  });
  new apigw.ApiMapping(scope, 'DomainMapping', { api, domainName, stage });
  return domainName;
}
