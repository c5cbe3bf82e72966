// A custom analyzer as a plain ESM module, loadable with no build step:
//
//   upshift serve --analyzers ./examples/wordCount.mjs
//   upshift jobs submit word-count --input '{"text":"to be or not to be"}' --wait --org acme
//
// The default export is the analyzer object: { name, version, inputSchema, run }.
// (In TypeScript, wrap it in `defineAnalyzer` from the package for type checking.)

/** Lines per partial snapshot: partials are business chunks, not micro-steps. */
const CHUNK_LINES = 1000;

export default {
  name: 'word-count',
  version: '1.0.0',
  description: 'Counts lines, words and the most frequent words of a text.',
  inputSchema: {
    type: 'object',
    properties: {
      text: { type: 'string', maxLength: 1000000 },
      top: { type: 'integer', minimum: 1, maximum: 100, default: 5 },
    },
    required: ['text'],
    additionalProperties: false,
  },
  async run(input, ctx) {
    const lines = input.text.split(/\r?\n/);
    const counts = new Map();
    let words = 0;
    for (let i = 0; i < lines.length; i++) {
      if (ctx.signal.aborted) throw ctx.signal.reason; // canceled, timed out or shutting down
      for (const w of lines[i].toLowerCase().match(/[\p{L}\p{N}']+/gu) ?? []) {
        counts.set(w, (counts.get(w) ?? 0) + 1);
        words++;
      }
      if ((i + 1) % CHUNK_LINES === 0 || i === lines.length - 1) {
        ctx.progress((i + 1) / lines.length, `${i + 1}/${lines.length} lines`);
        // Idempotent by chunk key: a retried attempt cannot duplicate this snapshot.
        await ctx.partial(`lines-${Math.floor(i / CHUNK_LINES)}`, { lines_done: i + 1, words_so_far: words });
      }
    }
    const top = [...counts.entries()]
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
      .slice(0, input.top ?? 5)
      .map(([word, count]) => ({ word, count }));
    return { lines: lines.length, words, distinct: counts.size, top };
  },
};
