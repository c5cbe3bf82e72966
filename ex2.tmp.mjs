import Database from 'better-sqlite3';
const db = new Database('/tmp/explain.db');
const sql = process.argv[2];
const n=(sql.match(/\?/g)||[]).length;
for (const o of db.prepare('EXPLAIN ' + sql).all(...Array(n).fill(null))) console.log(o.addr, o.opcode, o.p1, o.p2, o.p3, o.p4 ?? '', o.comment ?? '');
console.log(db.prepare("select sql from sqlite_master where tbl_name='jobs' or type='trigger'").all().map(r=>r.sql).join('\n'));
