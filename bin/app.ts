import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { RealtimeStack } from '../lib/realtime-stack.ts';

/**
 * The CDK app: one stack, settings from context (cdk.json, `-c key=value`). With no
 * credentials the stack is environment-agnostic and still synthesizes.
 */
const app = new App();
const stackName = String(app.node.tryGetContext('stackName') ?? 'JwtRealtime');
new RealtimeStack(app, stackName, {
  description: 'JWT-secured realtime messaging: HTTP API, WebSocket API, Lambda, DynamoDB',
  env:
    process.env.CDK_DEFAULT_ACCOUNT && process.env.CDK_DEFAULT_REGION
      ? { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION }
      : undefined,
});
// cdk-nag runs as a synth-time validation plugin, beside the CloudFormation validator.
Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
