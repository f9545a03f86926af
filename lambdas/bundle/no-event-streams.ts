/**
 * Stands in for `@smithy/core/event-streams` in the Lambda bundles (an esbuild alias set in
 * lib/handler-function.ts). The SDK loads it lazily for operations that stream events; DynamoDB
 * and Secrets Manager have none, so reaching this is a bug, said loudly.
 */
const absent = (): never => {
  throw new Error('event streams are not bundled into this function');
};

export class EventStreamSerde {
  constructor() {
    absent();
  }
}

export const eventStreamSerdeProvider = absent;
