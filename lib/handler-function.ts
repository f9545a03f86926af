import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import { copyArgon2Commands, ensureArgon2Arm64 } from './argon2.ts';
import { REPO_ROOT } from './paths.ts';

/** Node.js 22 LTS: the runtime the product is built and tested for (its bundles target it). */
export const RUNTIME = lambda.Runtime.NODEJS_22_X;

/**
 * ESM bundles still contain CommonJS dependencies that call `require`; esbuild's shim
 * needs a real one in scope.
 */
const ESM_REQUIRE_BANNER =
  "import { createRequire } from 'module'; const require = createRequire(import.meta.url);";

/**
 * Packages that SDK modules left in a bundle still import but no function calls, replaced in
 * every bundle by a small module of lambdas/bundle/ (paths from the project root, where esbuild
 * runs): the SDK's default credential chain (SSO, STS, ini files, instance metadata) by the
 * environment's credentials, which Lambda sets, and two SDK parts no DynamoDB call reaches.
 * The functions' DynamoDB client (lambdas/aws/dynamodb.ts) signs with the environment's
 * credentials itself. See docs/deploy.md.
 */
export const BUNDLE_ALIASES: Readonly<Record<string, string>> = {
  '@aws-sdk/credential-provider-node': './lambdas/bundle/env-credentials.ts',
  '@smithy/core/event-streams': './lambdas/bundle/no-event-streams.ts',
  '@aws-sdk/endpoint-cache': './lambdas/bundle/no-endpoint-cache.ts',
};

export interface HandlerFunctionProps {
  /** Absolute path of the entry file, which exports `handler`. */
  readonly entry: string;
  readonly description: string;
  readonly memoryMb?: number;
  readonly timeoutS?: number;
  /** Reserved concurrency: both a guaranteed share of the account's pool and a cap. */
  readonly reservedConcurrency?: number;
  readonly environment: Readonly<Record<string, string>>;
  readonly logRetention: logs.RetentionDays;
}

/**
 * Every Lambda of the product, with every default set here once: Node.js 22 on arm64, a
 * minified ESM bundle with source maps built by the local esbuild (never Docker), its own
 * log group with retention, and its own role that may write to that log group and nothing
 * else until the stack grants exactly what the function manifest lists.
 *
 * The AWS SDK v3 clients are bundled rather than taken from the runtime: the deployed code
 * is the code the tests ran, at the versions in package-lock.json (see docs/deploy.md).
 */
export class HandlerFunction extends NodejsFunction {
  /** The function's own log group (the base class exposes it only as ILogGroup). */
  readonly functionLogGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: HandlerFunctionProps) {
    const logGroup = new logs.LogGroup(scope, `${id}Logs`, {
      retention: props.logRetention,
      // The audit trail outlives the stack; retention still expires its events.
      removalPolicy: RemovalPolicy.RETAIN,
    });
    const role = new iam.Role(scope, `${id}Role`, {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `Execution role of ${props.description}`,
    });
    // Instead of AWSLambdaBasicExecutionRole (logs on every log group of the account).
    logGroup.grantWrite(role);

    const argon2Prefix = Stack.of(scope).bundlingRequired ? ensureArgon2Arm64() : undefined;
    super(scope, id, {
      entry: props.entry,
      handler: 'handler',
      description: props.description,
      runtime: RUNTIME,
      architecture: lambda.Architecture.ARM_64,
      memorySize: props.memoryMb ?? 256,
      timeout: Duration.seconds(props.timeoutS ?? 10),
      reservedConcurrentExecutions: props.reservedConcurrency,
      role,
      logGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      projectRoot: REPO_ROOT,
      depsLockFilePath: `${REPO_ROOT}/package-lock.json`,
      environment: { ...props.environment, NODE_OPTIONS: '--enable-source-maps' },
      bundling: {
        format: OutputFormat.ESM,
        banner: ESM_REQUIRE_BANNER,
        mainFields: ['module', 'main'],
        minify: true,
        sourceMap: true,
        sourcesContent: false,
        bundleAwsSDK: true,
        esbuildArgs: { '--alias': Object.entries(BUNDLE_ALIASES).map(([from, to]) => `${from}=${to}`) },
        // A native module cannot be bundled: it is copied beside the bundle when imported.
        externalModules: ['@node-rs/argon2'],
        forceDockerBundling: false,
        commandHooks: argon2Prefix
          ? {
              beforeBundling: () => [],
              beforeInstall: () => [],
              afterBundling: (_inputDir: string, outputDir: string) =>
                copyArgon2Commands(argon2Prefix, outputDir),
            }
          : undefined,
      },
    });
    this.functionLogGroup = logGroup;
  }
}
