// Prints "N passed, N failed" from vitest's JSON report. A step that failed before or
// outside the tests (lint, type-check) counts as one failure, so a red run never reads green.
import { readFileSync } from 'node:fs';

const [file, statusText] = process.argv.slice(2);
const status = Number(statusText);
let passed = 0;
let failed = 0;
try {
  const report = JSON.parse(readFileSync(file, 'utf8'));
  passed = report.numPassedTests ?? 0;
  failed = report.numFailedTests ?? 0;
  // A file that fails to load has no failed tests of its own; count it once.
  if (failed === 0) failed = report.numFailedTestSuites ?? 0;
} catch {
  // No report: vitest did not run.
}
if (status !== 0 && failed === 0) failed = 1;
console.log(`${passed} passed, ${failed} failed`);
