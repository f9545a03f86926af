import { CustomResource, Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { HandlerFunction } from './handler-function.ts';
import { REPO_ROOT } from './paths.ts';

export interface SigningKeysProps {
  /** Changing it rotates the key on the next deploy. */
  readonly rotation: string;
  /** Seconds a retired key must keep verifying. */
  readonly retireAfterS: number;
  readonly logRetention: logs.RetentionDays;
}

/**
 * The Ed25519 signing keys: two secrets and the custom resource that fills them inside AWS
 * at deploy time (`lambdas/custom-resource-keys.ts`). The template holds only the secrets'
 * ARNs; CloudFormation's placeholder value is replaced before any function can run.
 */
export class SigningKeys extends Construct {
  /** `{"keys":[{kid, createdAt, privateJwk}]}`: read only by token-issuing functions. */
  readonly privateSecret: secretsmanager.Secret;
  /** `{"keys":[public JWK]}`: read by every verifier. */
  readonly publicSecret: secretsmanager.Secret;
  readonly resource: CustomResource;
  readonly function: HandlerFunction;

  constructor(scope: Construct, id: string, props: SigningKeysProps) {
    super(scope, id);
    this.privateSecret = new secretsmanager.Secret(this, 'PrivateKeys', {
      description: 'Ed25519 private signing keys (JWK set), written by the SigningKeys custom resource.',
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.publicSecret = new secretsmanager.Secret(this, 'PublicKeys', {
      description: 'Public halves of the signing keys (JWK set), written by the SigningKeys custom resource.',
      removalPolicy: RemovalPolicy.DESTROY,
    });

    this.function = new HandlerFunction(this, 'Generator', {
      entry: `${REPO_ROOT}/lambdas/custom-resource-keys.ts`,
      description: 'Custom resource: generates and rotates the Ed25519 signing keys',
      timeoutS: 60,
      environment: {},
      logRetention: props.logRetention,
    });
    this.function.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['secretsmanager:GetSecretValue', 'secretsmanager:PutSecretValue'],
        resources: [this.privateSecret.secretArn],
      }),
    );
    this.function.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['secretsmanager:PutSecretValue'],
        resources: [this.publicSecret.secretArn],
      }),
    );

    this.resource = new CustomResource(this, 'Keys', {
      serviceToken: this.function.functionArn,
      resourceType: 'Custom::SigningKeys',
      serviceTimeout: Duration.minutes(2),
      properties: {
        PrivateSecretArn: this.privateSecret.secretArn,
        PublicSecretArn: this.publicSecret.secretArn,
        Rotation: props.rotation,
        RetireAfterS: String(props.retireAfterS),
      },
    });
  }
}
