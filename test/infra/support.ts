import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Validations } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import type { CloudAssembly } from 'aws-cdk-lib/cx-api';
import { AwsSolutionsChecks } from 'cdk-nag';
import { REPO_ROOT } from '../../lib/paths.ts';
import { RealtimeStack, type RealtimeStackProps } from '../../lib/realtime-stack.ts';

/** The context of cdk.json (feature flags and the example allowedOrigins), as `cdk synth` sees it. */
export const CDK_CONTEXT = (
  JSON.parse(readFileSync(join(REPO_ROOT, 'cdk.json'), 'utf8')) as {
    context: Record<string, unknown>;
  }
).context;

export interface Synthesized {
  readonly app: App;
  readonly stack: RealtimeStack;
  readonly template: Template;
  readonly assembly: CloudAssembly;
}

export interface SynthOptions extends RealtimeStackProps {
  /** Context on top of cdk.json's. */
  readonly context?: Record<string, unknown>;
  /** Bundle the functions with esbuild (slow); off, assets are placeholders. */
  readonly bundle?: boolean;
}

/** A fresh app like bin/app.ts: cdk.json's context, cdk-nag, and the built-in CloudFormation validator. */
export function makeApp(options: Pick<SynthOptions, 'context' | 'bundle'> = {}): App {
  return new App({
    outdir: mkdtempSync(join(tmpdir(), 'jwt-realtime-cdk-')),
    context: {
      ...CDK_CONTEXT,
      ...(options.bundle ? {} : { 'aws:cdk:bundling-stacks': [] }),
      ...options.context,
    },
  });
}

/** Builds the stack and synthesizes it; synthesis throws on any unacknowledged error-level finding. */
export function synth(options: SynthOptions = {}): Synthesized {
  const app = makeApp(options);
  const { context: _context, bundle: _bundle, ...props } = options;
  const stack = new RealtimeStack(app, 'Test', props);
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  const assembly = app.synth();
  return { app, stack, template: Template.fromStack(stack), assembly };
}

/** The validation report the synth wrote: plugin name -> its violations. */
export function validationViolations(assembly: CloudAssembly): Record<string, unknown[]> {
  const report = JSON.parse(readFileSync(join(assembly.directory, 'validation-report.json'), 'utf8')) as {
    pluginReports: { pluginName: string; violations?: unknown[] }[];
  };
  const out: Record<string, unknown[]> = {};
  for (const r of report.pluginReports) out[r.pluginName] = r.violations ?? [];
  return out;
}

type Json = Record<string, unknown>;

/** Every resource of a type, keyed by logical ID. */
export function resources(template: Template, type: string): Record<string, Json> {
  return template.findResources(type) as Record<string, Json>;
}

export function props(resource: Json): Json {
  return (resource.Properties ?? {}) as Json;
}

/** The logical ID of the Lambda function of a manifest entry. */
export function functionId(template: Template, name: string): string {
  const found = Object.entries(resources(template, 'AWS::Lambda::Function')).filter(([, r]) =>
    String(props(r).Description ?? '').startsWith(`${name}: `),
  );
  if (found.length !== 1) throw new Error(`expected one function ${name}, found ${found.length}`);
  return (found[0] as [string, Json])[0];
}

export interface Statement {
  readonly Effect: string;
  readonly Action: string | string[];
  readonly Resource: unknown;
}

/** The statements of every policy attached to a function's role. */
export function roleStatements(template: Template, functionLogicalId: string): Statement[] {
  const fn = resources(template, 'AWS::Lambda::Function')[functionLogicalId];
  if (!fn) throw new Error(`no function ${functionLogicalId}`);
  const roleRef = JSON.stringify((props(fn).Role as { 'Fn::GetAtt': [string, string] })['Fn::GetAtt'][0]);
  const statements: Statement[] = [];
  for (const policy of Object.values(resources(template, 'AWS::IAM::Policy'))) {
    const p = props(policy);
    if (!(p.Roles as unknown[]).some((r) => JSON.stringify((r as { Ref: string }).Ref) === roleRef)) continue;
    statements.push(...((p.PolicyDocument as { Statement: Statement[] }).Statement ?? []));
  }
  const role = resources(template, 'AWS::IAM::Role')[JSON.parse(roleRef) as string];
  if (!role) throw new Error('role not found');
  // Inline policies and managed policies on the role itself count too.
  for (const inline of (props(role).Policies as { PolicyDocument: { Statement: Statement[] } }[]) ?? []) {
    statements.push(...inline.PolicyDocument.Statement);
  }
  if (props(role).ManagedPolicyArns) throw new Error(`role of ${functionLogicalId} has managed policies`);
  return statements;
}

export const actionsOf = (s: Statement): string[] => (Array.isArray(s.Action) ? s.Action : [s.Action]);
export const resourcesOf = (s: Statement): unknown[] =>
  Array.isArray(s.Resource) ? s.Resource : [s.Resource];
