/** The SQS event Lambda's event source mapping sends, and its partial-batch answer; the local queue sends the same. */
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';

export type SqsEvent = SQSEvent;
export type SqsRecord = SQSRecord;
/** `batchItemFailures` names the records to deliver again (needs `ReportBatchItemFailures` on the mapping). */
export type SqsBatchResponse = SQSBatchResponse;
