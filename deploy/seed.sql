-- Demo schema and rows: tenants acme and globex, the tables the shipped shape_rules.yaml names.
-- One file for both demos: `make demo` (deploy/demo.py) runs it on its database, and
-- deploy/compose.yaml mounts it into PostgreSQL's docker-entrypoint-initdb.d. Safe to re-run.
DROP TABLE IF EXISTS countries, projects, tasks, drafts CASCADE;
DROP SCHEMA IF EXISTS tenant_acme CASCADE;
DROP SCHEMA IF EXISTS tenant_globex CASCADE;

CREATE TABLE countries (code text PRIMARY KEY, name text);
INSERT INTO countries VALUES ('FR', 'France'), ('JP', 'Japan');

CREATE TABLE projects (id int PRIMARY KEY, tenant_id text, name text, budget int);
INSERT INTO projects VALUES (1, 'acme', 'Rocket skates', 5000), (2, 'globex', 'Doomsday device', 9);

CREATE TABLE tasks (id int PRIMARY KEY, tenant_id text, project_id int, title text,
                    status text, assigned_to text, internal_notes text);
INSERT INTO tasks VALUES
  (1, 'acme', 1, 'Test the skates', 'open', 'alice', 'acme only'),
  (2, 'acme', 1, 'Order more rockets', 'done', 'carol', 'acme only'),
  (3, 'globex', 2, 'Hire henchmen', 'open', 'bob', 'globex only');

CREATE TABLE drafts (id int PRIMARY KEY, tenant_id text, user_id text, body text);
INSERT INTO drafts VALUES (1, 'acme', 'alice', 'alice''s draft'), (2, 'acme', 'carol', 'carol''s');

CREATE SCHEMA tenant_acme;
CREATE TABLE tenant_acme.documents (id int PRIMARY KEY, title text);
INSERT INTO tenant_acme.documents VALUES (1, 'Acme handbook');

CREATE SCHEMA tenant_globex;
CREATE TABLE tenant_globex.documents (id int PRIMARY KEY, title text);
INSERT INTO tenant_globex.documents VALUES (1, 'Globex master plan');
