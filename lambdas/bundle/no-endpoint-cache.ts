/**
 * Stands in for `@aws-sdk/endpoint-cache` in the Lambda bundles (an esbuild alias set in
 * lib/handler-function.ts). The DynamoDB client builds one at construction for endpoint
 * discovery, which none of its commands use in this SDK version; any use is a bug, said loudly.
 */
export class EndpointCache {
  getEndpoint(_key: string): never {
    throw new Error('endpoint discovery is not bundled into this function');
  }
  get(key: string): never {
    return this.getEndpoint(key);
  }
  set(key: string, _endpoints: unknown): never {
    return this.getEndpoint(key);
  }
}
