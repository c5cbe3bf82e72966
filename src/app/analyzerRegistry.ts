import { Ajv, type ValidateFunction } from 'ajv';
import type { Analyzer } from '../core/analyzer.js';
import { UpshiftError } from '../core/errors.js';
import type { Json } from '../core/job.js';

interface Entry {
  readonly analyzer: Analyzer<unknown, unknown>;
  readonly validate: ValidateFunction;
}

/** Registered analyzers by name, with compiled input validators. */
export class AnalyzerRegistry {
  private readonly entries = new Map<string, Entry>();
  private readonly ajv = new Ajv({ allErrors: false, strict: false, useDefaults: true, coerceTypes: false });

  register(analyzer: Analyzer<never, unknown>): this {
    if (this.entries.has(analyzer.name)) throw new UpshiftError('CONFIG_INVALID', `analyzer "${analyzer.name}" registered twice`);
    const a = analyzer as unknown as Analyzer<unknown, unknown>;
    this.entries.set(a.name, { analyzer: a, validate: this.ajv.compile(a.inputSchema) });
    return this;
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  /** Analyzers registered so far (registration only adds: a cache keyed by it stays exact). */
  get size(): number {
    return this.entries.size;
  }

  list(): Analyzer<unknown, unknown>[] {
    return [...this.entries.values()].map((e) => e.analyzer);
  }

  get(name: string): Analyzer<unknown, unknown> {
    const e = this.entries.get(name);
    if (!e) throw new UpshiftError('ANALYZER_NOT_FOUND', `no analyzer named "${name}"`, { details: { analyzer: name, known: this.names() } });
    return e.analyzer;
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  /** Throws ANALYZER_NOT_FOUND / ANALYZER_INPUT_INVALID; returns the (defaulted) input. */
  validateInput(name: string, input: unknown): Json {
    const e = this.entries.get(name);
    if (!e) this.get(name);
    const entry = e as Entry;
    if (!entry.validate(input)) {
      const errors = (entry.validate.errors ?? []).map((x) => ({ path: x.instancePath || '/', message: x.message ?? 'invalid' }));
      throw new UpshiftError('ANALYZER_INPUT_INVALID', `input for "${name}" is invalid: ${errors.map((x) => `${x.path} ${x.message}`).join('; ')}`, { details: { errors } });
    }
    return input as Json;
  }
}
