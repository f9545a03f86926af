import { UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { describe, expect, it } from 'vitest';
import { localTableNames } from '../../lambdas/core/tables.ts';
import { ensureTables, localDynamoClient, randomCredentials, startDynalite } from '../../local/dynamo.ts';

describe('startDynalite', () => {
  it('closes without crashing while operations are still running, its clients already gone', async () => {
    for (const delayMs of [0, 2, 5, 10, 20, 40]) {
      const dynamo = await startDynalite({ credentials: randomCredentials() });
      const db = localDynamoClient(dynamo.endpoint, dynamo.credentials);
      const tables = localTableNames('close-');
      await ensureTables(db, tables);
      let stop = false;
      let sent = 0;
      // Writers that keep going until the end, as $disconnect handlers at shutdown.
      const writers = Array.from({ length: 32 }, async (_, w) => {
        while (!stop) {
          sent++;
          await db
            .send(
              new UpdateItemCommand({
                TableName: tables.counters,
                Key: { id: { S: `u${w}` } },
                UpdateExpression: 'ADD c :one',
                ExpressionAttributeValues: { ':one': { N: '1' } },
              }),
            )
            .catch(() => {
              stop = true;
            });
        }
      });
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      db.destroy();
      await dynamo.close();
      stop = true;
      await Promise.all(writers);
      expect(sent).toBeGreaterThan(0);
    }
  });
});
