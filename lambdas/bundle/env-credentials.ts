import { credentialsFromEnv } from '../aws/signed-http.ts';

/**
 * Stands in for `@aws-sdk/credential-provider-node` in the Lambda bundles (an esbuild alias set in
 * lib/handler-function.ts). On Lambda the execution role's credentials are in the environment;
 * the SDK's default chain would bundle SSO, STS, ini-file and metadata providers to find them.
 */
export const defaultProvider =
  (_init?: unknown) =>
  async (): Promise<{ accessKeyId: string; secretAccessKey: string; sessionToken?: string }> => {
    const { accessKeyId, secretAccessKey, sessionToken } = credentialsFromEnv(process.env);
    return { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) };
  };
