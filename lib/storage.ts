import { RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import { Construct } from 'constructs';
import { type KeyAttr, TABLE_KEYS, TABLES, type TableKey } from '../lambdas/core/tables.ts';

const attr = (a: KeyAttr): dynamodb.Attribute => ({
  name: a.name,
  type: a.type === 'S' ? dynamodb.AttributeType.STRING : dynamodb.AttributeType.NUMBER,
});

/**
 * Every table of `lambdas/core/tables.ts`, on demand. Durable tables (users, sessions) keep
 * their data: RETAIN on stack deletion, deletion protection and point-in-time recovery.
 * The others hold TTL-bound state that the system rebuilds, and go with the stack.
 */
export class Storage extends Construct {
  readonly tables: Readonly<Record<TableKey, dynamodb.Table>>;

  constructor(scope: Construct, id: string) {
    super(scope, id);
    const tables = {} as Record<TableKey, dynamodb.Table>;
    for (const key of TABLE_KEYS) {
      const def = TABLES[key];
      const table = new dynamodb.Table(this, pascal(key), {
        partitionKey: attr(def.partitionKey),
        sortKey: def.sortKey ? attr(def.sortKey) : undefined,
        billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
        timeToLiveAttribute: def.ttlAttribute,
        pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: def.durable },
        deletionProtection: def.durable,
        removalPolicy: def.durable ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY,
      });
      for (const index of def.indexes) {
        const projection = index.projection;
        table.addGlobalSecondaryIndex({
          indexName: index.indexName,
          partitionKey: attr(index.partitionKey),
          sortKey: index.sortKey ? attr(index.sortKey) : undefined,
          projectionType:
            projection === 'ALL'
              ? dynamodb.ProjectionType.ALL
              : projection === 'KEYS_ONLY'
                ? dynamodb.ProjectionType.KEYS_ONLY
                : dynamodb.ProjectionType.INCLUDE,
          nonKeyAttributes: typeof projection === 'string' ? undefined : [...projection],
        });
      }
      tables[key] = table;
    }
    this.tables = Object.freeze(tables);
  }
}

export function pascal(name: string): string {
  return name
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean)
    .map((part) => part.charAt(0).toUpperCase() + part.slice(1))
    .join('');
}
