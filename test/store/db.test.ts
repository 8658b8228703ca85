/**
 * The store on SQLite and PostgreSQL: migrations are idempotent and safe when processes race,
 * transactions commit or roll back as a whole, and concurrent transactions never interleave.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { openDb, toPgSql } from '../../src/store/db.js';
import { migrate } from '../../src/store/schema.js';
import { PG_URL, freshPgDatabase } from '../helpers/seed.js';

test('? placeholders become $n for PostgreSQL, but not inside quotes', () => {
  assert.equal(toPgSql("SELECT * FROM t WHERE a = ? AND b = '?' AND c = ?"), "SELECT * FROM t WHERE a = $1 AND b = '?' AND c = $2");
});

test('an unsupported database URL is refused with a clear message (credentials hidden)', async () => {
  await assert.rejects(openDb('mysql://root:hunter2@db/ooo'), (e: Error) => /unsupported database URL/.test(e.message) && !e.message.includes('hunter2'));
});

for (const store of PG_URL ? ['sqlite', 'postgres'] : ['sqlite']) {
  describe(`store on ${store}`, () => {
    const open = async () => {
      if (store === 'sqlite') return { db: await openDb(':memory:'), drop: async () => undefined };
      const { url, drop } = await freshPgDatabase();
      return { db: await openDb(url), drop, url };
    };

    test('migrations apply once', async () => {
      const { db, drop } = await open();
      assert.ok((await migrate(db)) >= 2);
      assert.equal(await migrate(db), 0);
      await db.close();
      await drop();
    });

    test('a failed transaction leaves nothing behind; concurrent ones do not interleave', async () => {
      const { db, drop } = await open();
      await migrate(db);
      await assert.rejects(db.tx(async (t) => {
        await t.run("INSERT INTO settings (key, value) VALUES ('a', '1')");
        throw new Error('boom');
      }), /boom/);
      assert.equal(await db.get("SELECT value FROM settings WHERE key = 'a'"), undefined);
      await db.run("INSERT INTO settings (key, value) VALUES ('counter', '0')");
      // 20 read-modify-write transactions at once: no lost update.
      await Promise.all(Array.from({ length: 20 }, () => db.tx(async (t) => {
        const row = await t.get<{ value: string }>(store === 'postgres' ? "SELECT value FROM settings WHERE key = 'counter' FOR UPDATE" : "SELECT value FROM settings WHERE key = 'counter'");
        await new Promise((r) => setTimeout(r, 1));
        await t.run("UPDATE settings SET value = ? WHERE key = 'counter'", [String(Number(row!.value) + 1)]);
      })));
      assert.equal((await db.get<{ value: string }>("SELECT value FROM settings WHERE key = 'counter'"))!.value, '20');
      await db.close();
      await drop();
    });

    if (store === 'postgres') {
      test('two processes migrating one database at once both succeed', async () => {
        const { url, drop } = await freshPgDatabase();
        const [a, b] = [await openDb(url), await openDb(url)];
        const [x, y] = await Promise.all([migrate(a), migrate(b)]);
        assert.ok(x + y >= 2);
        assert.equal(await migrate(a), 0);
        await a.close(); await b.close();
        await drop();
      });
    }
  });
}
