"""Replies: an assistant message streamed from the upstream (the server Parley calls) to the
client, saved as it goes. Chat replies, stateless generations (POST /api/generate), titles and
summaries.

- router.py         the HTTP endpoints, one service call each; websocket.py the chat WebSocket
- service.py        starting replies: validate, persist the user's side, reserve usage, start
- reply_stream.py   where a reply is streamed: ReplyStream, and the replies active here
- reply_log.py      a reply's numbered events, its readers, the compact ended log, publishing
- reply_events.py   the events a reply sends (start, delta, usage, done, error) and the SSE response
- reply_saver.py    where a reply is saved, in short transactions; repository.py holds the SQL
- summaries.py      chat titles and summaries (replies written whole, never streamed)
- prompt.py         the messages sent upstream, and token estimates
- upstream/         where the upstream is called (openai.py) and everything about upstreams
- errors.py         every error this package raises
- parts.py          the package's long-lived parts, started and stopped by app/runtime.py
- stop_signals.py   stopping a reply on whichever worker streams it
- resume.py         rejoining a reply after a dropped connection (Last-Event-ID), on any worker
- reply_buffer.py   replies' events in Redis streams, for rejoins on other workers
- reply_follow.py   following a reply through Redis: one reader per reply per worker, shared
- idempotency.py    Idempotency-Key: a retried send gets the reply the first attempt started
- stale_replies.py  replies left `streaming` by a process that died
- dependencies.py, schemas.py, models.py  as in every domain package
"""
