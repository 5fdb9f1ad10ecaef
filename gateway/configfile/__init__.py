"""Configuration as code: the gateway's apps and endpoints as a YAML file, and snapshots of them.

* `model`: the file's schema (pydantic), and `State`, the same with secrets in the clear (memory only);
* `yamlfile`: reading a file with the line of every value, writing one deterministically;
* `references`: `${VAR}` references in place of secrets, and their names;
* `exporter`: the gateway's records as a `State`; `plan`: what turns one `State` into another;
* `applier`: carrying a plan out; `snapshots`: states kept in the store, secrets sealed.
"""
