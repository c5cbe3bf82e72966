// Submit form: analyzer, JSON input, priority (and optional max attempts, idempotency key, or a
// dataset file for upload). The input text is sent as written — the server validates it, so
// the form shows exactly the problem the API answers (e.g. 400 BODY_MALFORMED).
import { api, query } from '../api.js';
import { h, replace, statusBadge } from '../dom.js';
import { problemView } from '../problem.js';

const EXAMPLES = {
  sleep: '{"ms": 3000, "steps": 5}',
  noop: '{"hello": "world"}',
  'dataset-profile': '{"format": "csv", "data": "city,temp\\nOslo,4.5\\nRome,17\\nLima,19.2\\n"}',
};

export async function renderSubmit(root, ctx) {
  const analyzers = ctx.config.analyzers;
  const preset = ctx.params.get('analyzer');
  const first = preset && analyzers.includes(preset) ? preset : analyzers.includes('sleep') ? 'sleep' : analyzers[0] ?? '';
  const analyzer = h('select', { name: 'analyzer', id: 'submit-analyzer', required: true }, analyzers.map((a) => h('option', { value: a, selected: a === first }, a)));
  const input = h('textarea', { name: 'input', id: 'submit-input', rows: 8, spellcheck: 'false', class: 'mono' }, EXAMPLES[first] ?? '{}');
  const priority = h('input', { name: 'priority', id: 'submit-priority', type: 'number', min: -1000, max: 1000, step: 1, value: 0 });
  const maxAttempts = h('input', { name: 'max_attempts', id: 'submit-max-attempts', type: 'number', min: 1, max: 100, step: 1, placeholder: 'analyzer default' });
  const idemKey = h('input', { name: 'idempotency_key', id: 'submit-idempotency-key', maxlength: 255, placeholder: 'optional', autocomplete: 'off' });
  const file = h('input', { name: 'file', id: 'submit-file', type: 'file', accept: '.csv,.ndjson,.jsonl,text/csv,application/x-ndjson' });
  const outcome = h('div', { id: 'submit-outcome' });
  const button = h('button', { type: 'submit', id: 'submit-button' }, 'Submit job');

  analyzer.addEventListener('change', () => {
    const ex = EXAMPLES[analyzer.value];
    if (ex !== undefined) input.value = ex;
  });

  const submit = async (ev) => {
    ev.preventDefault();
    button.disabled = true;
    replace(outcome, h('p', { class: 'muted' }, 'submitting…'));
    const headers = {};
    const key = idemKey.value.trim();
    if (key !== '') headers['idempotency-key'] = key;
    const prio = priority.value.trim();
    const attempts = maxAttempts.value.trim();
    let replayed = false;
    const onResponse = (res) => {
      replayed = res.headers.get('idempotent-replayed') === 'true';
    };
    try {
      let created;
      const upload = file.files?.[0];
      if (upload) {
        const format = /\.(ndjson|jsonl)$/i.test(upload.name) ? 'ndjson' : 'csv';
        created = await api(`/analyze/jobs${query({ analyzer: analyzer.value, format, priority: prio || undefined, max_attempts: attempts || undefined })}`, {
          body: upload,
          contentType: format === 'ndjson' ? 'application/x-ndjson' : 'text/csv',
          headers,
          onResponse,
        });
      } else {
        // Built as text so the input goes to the server exactly as typed.
        const members = [`"analyzer":${JSON.stringify(analyzer.value)}`, `"input":${input.value.trim() === '' ? 'null' : input.value}`];
        if (prio !== '') members.push(`"priority":${Number(prio)}`);
        if (attempts !== '') members.push(`"max_attempts":${Number(attempts)}`);
        created = await api('/analyze/jobs', { body: `{${members.join(',')}}`, headers, onResponse });
      }
      const href = `/ui/jobs/${encodeURIComponent(created.job_id)}`;
      replace(
        outcome,
        h(
          'div',
          { class: 'created card', id: 'created-job', 'data-job-id': created.job_id },
          h('strong', null, replayed ? 'Already submitted with this idempotency key: ' : 'Job submitted: '),
          h('a', { href, class: 'mono', id: 'created-job-link' }, created.job_id),
          ' ',
          statusBadge(created.status),
          h('p', null, h('a', { href, class: 'button' }, 'Follow it live »')),
        ),
      );
    } catch (e) {
      replace(outcome, problemView(e));
    } finally {
      button.disabled = false;
    }
  };

  replace(
    root,
    h('h1', null, 'Submit a job'),
    h(
      'form',
      { class: 'submit-form', id: 'submit-form', onsubmit: submit },
      field('Analyzer', analyzer),
      field('Input (JSON)', input, 'Sent as written; the analyzer’s input schema is checked by the server.'),
      h('div', { class: 'row' }, field('Priority', priority, '−1000..1000, higher runs first'), field('Max attempts', maxAttempts)),
      field('Idempotency key', idemKey, 'Same key and same request → the same job.'),
      field('…or upload a dataset file', file, 'CSV or NDJSON, sent as the request body and streamed to disk (replaces the input above).'),
      h('div', { class: 'actions' }, button),
    ),
    outcome,
  );
}

function field(label, control, help) {
  return h('div', { class: 'field' }, h('label', { for: control.id }, label), control, help ? h('small', { class: 'help' }, help) : null);
}
