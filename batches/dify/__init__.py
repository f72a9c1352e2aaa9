"""The Dify Service API client, one module per concern.

- `types`: what a call needs and gives back (`AppSettings`, `InputVariable`, `CallResult`) and the client's limits.
- `client`: `DifyClient`, the one (async) client: run a row, look up a run, stop a run, read an app's documents.
- `file_types`: a file's type and upload limits as Dify 1.13.2 decides them (import-time checks use them too).
- `upload`: the multipart body of `POST /files/upload` (sent by `DifyClient.upload`), one file streamed from disk.
- `pages`: the calls a person waits for (input variables, "Test connection", a probe), through `DifyClient`.
- `errors`: which error type an answer or an exception means (the rules of README "Error classification").
- `answers`: reading blocking bodies, stream events, workflow runs and `user_input_form`.
- `sse`: Server-Sent Events decoding and the size-capped body readers.
- `hosts`: where a base URL may point (checked on save and on the resolved address at call time).
- `redact`: keeping the API key out of messages, logs and stored outputs.

Importing this package loads nothing: the models import `hosts` without loading an HTTP library.
"""
