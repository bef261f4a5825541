"""Enthusiast's conversations API (a conversation and its trace, the list of chats, the media
of uploads): above app.executions, since it tells an execution's conversation from a chat; the
conversations themselves (models, storage, the trace) are app.conversations, below it."""
