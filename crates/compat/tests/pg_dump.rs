//! A real `pg_dump --schema-only` output (PostgreSQL 15.18, `fixtures/migrations/`) analysed
//! as a migration. It holds what dumps and schema files hold: psql meta-commands
//! (`\restrict`), a dozen session settings, `ALTER SEQUENCE ... OWNED BY`, `OWNER TO` on
//! types, domains and statistics, identity columns with sequence options, a materialized view
//! `WITH NO DATA`, a SQL-standard function body and constraints added after each table.
//!
//! It was dumped from a database built by:
//!
//! ```sql
//! CREATE EXTENSION IF NOT EXISTS pgcrypto;
//! CREATE SCHEMA billing;
//! CREATE TYPE mood AS ENUM ('ok','sad');
//! CREATE DOMAIN posint AS int CHECK (VALUE > 0);
//! CREATE TABLE users (id bigserial PRIMARY KEY, email text NOT NULL UNIQUE, m mood DEFAULT 'ok',
//!   n posint, created timestamptz DEFAULT now(), tags text[], uid uuid DEFAULT gen_random_uuid());
//! CREATE TABLE billing.invoices (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
//!   user_id bigint REFERENCES users(id) ON DELETE CASCADE, amount numeric(12,2)
//!   CHECK (amount >= 0), r int4range, EXCLUDE USING gist (r WITH &&));
//! CREATE INDEX ON users USING gin (tags);
//! CREATE UNIQUE INDEX users_lower_email ON users (lower(email)) WHERE email IS NOT NULL;
//! CREATE VIEW active AS SELECT * FROM users WHERE m = 'ok';
//! CREATE MATERIALIZED VIEW counts AS SELECT m, count(*) FROM users GROUP BY m;
//! CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql
//!   AS $$ BEGIN NEW.created := now(); RETURN NEW; END $$;
//! CREATE FUNCTION add(a int, b int) RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT a + b; END;
//! CREATE TRIGGER t BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION touch();
//! CREATE TABLE measurements (id int, at date) PARTITION BY RANGE (at);
//! CREATE TABLE m2025 PARTITION OF measurements FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
//! CREATE POLICY p ON users USING (true);
//! ALTER TABLE users ENABLE ROW LEVEL SECURITY;
//! COMMENT ON TABLE users IS 'people';
//! CREATE SEQUENCE s;
//! CREATE STATISTICS st (dependencies) ON id, n FROM users;
//! ```

use serin_compat::Severity;
use serin_compat::migration::{Safety, analyze};

const DUMP: &str = include_str!("../fixtures/migrations/pg_dump_15_schema.sql");

#[test]
fn every_statement_is_read_and_nothing_blocks() {
    let report = analyze("pg_dump_15_schema", DUMP).unwrap();
    // Every object it alters, it creates first, so nothing locks a table in use: at most
    // notes on what is not analysed (functions, triggers, policies).
    let loud: Vec<String> = report
        .findings()
        .filter(|(_, f)| f.severity != Severity::Info)
        .map(|(s, f)| format!("line {}: {} ({})", s.line, f.rule, s.sql))
        .collect();
    assert!(loud.is_empty(), "{loud:#?}");
    assert_eq!(report.safety(), Safety::Safe);
    let at = |line: u64| {
        report
            .statements
            .iter()
            .find(|s| s.line == line)
            .unwrap_or_else(|| panic!("no statement at line {line}"))
    };
    // The meta-command is a statement of its own; the first SET is another.
    assert!(at(5).sql.starts_with("\\restrict "), "{}", at(5).sql);
    assert_eq!(at(10).sql, "SET statement_timeout = 0");
    assert!(
        report
            .statements
            .last()
            .unwrap()
            .sql
            .starts_with("\\unrestrict ")
    );
    // The SQL-standard body is one statement, through its END.
    let add = at(70);
    assert!(
        add.sql.starts_with("CREATE FUNCTION public.add") && add.sql.ends_with("END"),
        "{}",
        add.sql
    );
    assert_eq!(add.findings[0].rule, "not-analysed");
}
