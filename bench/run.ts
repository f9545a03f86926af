import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../lib/paths.ts';
import { measureAuth } from './auth.ts';
import { BUNDLE_CAP_KB, measureColdStarts } from './cold-start.ts';
import { costModel } from './cost.ts';
import { measureE2e } from './e2e.ts';
import { measureFanout } from './fanout.ts';
import { fanoutScale } from './fanout-scale.ts';
import { measureRoutes, ROOM_SIZE } from './routes.ts';
import { fmt, machine, maxOfKnown as max, meanOfKnown, now, progress, type Section, usd } from './support.ts';

/**
 * `npm run bench`: every measurement in one run on this machine, printed and written to
 * BENCHMARKS.md, with the Cost section of docs/deploy.md refreshed. Exits 1 if a budget broke.
 * Comparisons are ratios measured side by side in this run; absolute times are this machine's.
 */
const started = now();
const sections: Section[] = [];
const show = (s: Section) => {
  sections.push(s);
  process.stdout.write(`\n## ${s.title}\n\n${s.markdown}\n`);
};

progress('1/7 DynamoDB round trips per route');
const routes = await measureRoutes();
show(routes.section);
progress('2/7 fan-out: Query vs Scan as the table grows');
const fanout = await measureFanout([1_000, 10_000, 50_000]);
show(fanout.section);
progress('3/7 fan-out at scale: big rooms through the queue');
const scale = await fanoutScale();
show(scale.section);
progress('4/7 end to end through the local gateway');
const e2e = await measureE2e([
  { sockets: 100, messages: 50 },
  { sockets: 1_000, messages: 10 },
]);
show(e2e.section);
progress('5/7 cold starts');
const cold = await measureColdStarts(7);
show(cold.section);
progress('6/7 auth costs');
const auth = await measureAuth();
show(auth.section);
progress('7/7 cost model');
const cost = costModel(routes.rows, fanout.points, ROOM_SIZE);
show(cost.section);

const m = machine();
const failures = sections.flatMap((s) => s.failures.map((f) => `${s.title}: ${f}`));
const seconds = (now() - started) / 1000;
const msg = routes.rows.find((r) => r.route.startsWith('$default chat message (room of'))?.cost;
const keyed = routes.rows.find((r) => r.route.startsWith('$default chat message with'))?.cost;
const authz = routes.rows.find((r) => r.route.startsWith('authorizer'))?.cost;
const scan10k = fanout.points.find((p) => p.connections === 10_000);
const e2e1000 = e2e.rows.find((r) => r.sockets === 1_000);
const coldRows = cold.rows.filter((r) => r.oursKb > 10);
const headline = [
  `- Authorizer: **${authz?.roundTrips} DynamoDB round trip** per handshake (budget 1); a chat message: ` +
    `**${msg?.roundTripsBeforeFanOut} round trips before fan-out** (budget 2), ${msg?.operations} operations in all, no Scan; ` +
    `with an \`idempotencyKey\` **${keyed?.roundTripsBeforeFanOut}** (budget 3).`,
  `- DynamoDB per million chat messages: ${usd(cost.dynamoPerMillionMessages.before)} before messages were numbered, ` +
    `**${usd(cost.dynamoPerMillionMessages.numbered)}** with the per-room \`seq\`, ` +
    `${usd(cost.dynamoPerMillionMessages.keyed)} with an \`idempotencyKey\`.`,
  scan10k
    ? `- Finding a room of 50 among 10 000 stored connections: the Scan sample reads ` +
      `**${fmt(scan10k.scan.itemsRead / scan10k.ours.itemsRead)}× the items and ${fmt(scan10k.scan.readUnits / scan10k.ours.readUnits)}× the read units** ` +
      `of our Query, and takes ${fmt(scan10k.scan.ms / scan10k.ours.ms)}× as long here; ours stays flat as the table grows.`
    : '',
  ((m1k, m10k) =>
    m1k && m10k
      ? `- Big rooms: the sender's ack in **${fmt(m10k.ackMs)} ms** at 10,000 members (${fmt(m1k.ackMs)} ms at 1,000), the last ` +
        `delivery after **${fmt(m10k.lastMs)} ms** (${fmt(m10k.lastMs / m1k.lastMs, 2)}× 1,000's, budget ≤ 2×), ${fmt(m10k.postsPerWorker)} posts per worker, ` +
        `in the model; every member of the measured rooms got it exactly once.`
      : '')(
    scale.model.find((r) => r.members === 1_000),
    scale.model.find((r) => r.members === 10_000),
  ),
  e2e1000
    ? `- 1 000 sockets in one room: **${fmt(e2e1000.ours.deliveriesPerS)} deliveries/s** through the local gateway ` +
      `(p50 ${fmt(e2e1000.ours.p50Ms)} ms, p99 ${fmt(e2e1000.ours.p99Ms)} ms), ` +
      `${fmt((e2e1000.ours.deliveriesPerS / e2e1000.bare.deliveriesPerS) * 100, 2)}% of a bare \`ws\` broadcast on the same machine.`
    : '',
  `- Bundles: **${fmt(meanOfKnown(coldRows.map((r) => r.oursKb)))} KB** on average (largest ${fmt(max(coldRows.map((r) => r.oursKb)))} KB, cap ${BUNDLE_CAP_KB} KB), ` +
    `${fmt(meanOfKnown(coldRows.map((r) => r.beforeKb)))} KB with the SDK's DynamoDB client (largest ${fmt(max(coldRows.map((r) => r.beforeKb)))} KB), ` +
    `${fmt(meanOfKnown(coldRows.map((r) => r.firstKb)))} KB first; cold start (import + one event, median) ` +
    `**${fmt(meanOfKnown(coldRows.map((r) => r.oursMs)))} ms**, ${fmt(meanOfKnown(coldRows.map((r) => r.beforeMs)))} ms with the SDK client, ` +
    `${fmt(cold.emptyMs)} ms for an empty handler; a DynamoDB call costs ` +
    cold.dbCalls.map((d) => `${fmt(d.leanUs / d.sdkUs, 2)}× the SDK client's CPU (${d.call})`).join(', ') +
    '.',
  `- Posting: one \`PostToConnection\` costs **${fmt(e2e.post.leanUs)} µs of CPU** through ours, ` +
    `${fmt(e2e.post.sdkUs)} µs through the AWS SDK client: **${fmt(e2e.post.leanUs / e2e.post.sdkUs, 2)}×** (budget ≤ 0.4).`,
  `- Token verification: ${fmt(auth.oursVerifyPerS)}/s (EdDSA, ours) vs ${fmt(auth.hs256VerifyPerS)}/s (jsonwebtoken HS256); ` +
    `authorizer CPU ${fmt(auth.authorizerCpuUs)} µs per handshake.`,
  `- Cost per million chat messages (room of 50): **${fmt(cost.perMillionMessages.ours)} USD** ours; the Scan sample ` +
    cost.perMillionMessages.scan
      .map((s) => `${fmt(s.cost)} USD at ${fmt(s.connections)} connections`)
      .join(', ') +
    '.',
].filter(Boolean);

const doc = [
  '# Benchmarks',
  '',
  `Written by \`npm run bench\` (bench/run.ts) on ${m.date}: ${m.cpu}, ${m.cores} cores, ${m.memoryGb} GB, ` +
    `Node ${m.node}; the run took ${fmt(seconds)} s. One run, medians; every comparison is a ratio of two ` +
    'figures measured side by side in this run. These machines are noisy: compare ratios, not milliseconds ' +
    'across runs. Nothing here is a test: `npm test` never fails on a duration; `npm run bench` exits 1 when a ' +
    'budget below breaks.',
  '',
  '## Headlines',
  '',
  ...headline,
  '',
  ...(failures.length > 0 ? ['**Broken budgets:**', '', ...failures.map((f) => `- ❌ ${f}`), ''] : []),
  ...sections.flatMap((s) => [`## ${s.title}`, '', s.markdown, '']),
].join('\n');
writeFileSync(join(REPO_ROOT, 'BENCHMARKS.md'), doc);

// The Cost section of docs/deploy.md, and only it.
const deployPath = join(REPO_ROOT, 'docs', 'deploy.md');
const deploy = readFileSync(deployPath, 'utf8');
const start = deploy.indexOf('\n## Cost\n');
if (start === -1) {
  progress('docs/deploy.md has no "## Cost" section: left alone');
} else {
  const next = deploy.indexOf('\n## ', start + 1);
  const end = next === -1 ? deploy.length : next + 1;
  writeFileSync(
    deployPath,
    `${deploy.slice(0, start + 1)}${cost.deployDoc}${next === -1 ? '' : '\n'}${deploy.slice(end)}`,
  );
}

// Written files follow the project's formatter, so `npm test`'s lint stays green after a bench run.
execFileSync(
  join(REPO_ROOT, 'node_modules', '.bin', 'biome'),
  ['format', '--write', 'BENCHMARKS.md', 'docs/deploy.md'],
  {
    cwd: REPO_ROOT,
    stdio: 'ignore',
  },
);
progress(`done in ${fmt(seconds)} s; wrote BENCHMARKS.md and the Cost section of docs/deploy.md`);
if (failures.length > 0) {
  process.stderr.write(`\nBudgets broken:\n${failures.map((f) => `  - ${f}`).join('\n')}\n`);
  process.exitCode = 1;
}
