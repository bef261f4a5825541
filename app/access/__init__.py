"""The admin routes that take a user's access away (disable him, remove him from a dataset)
and so reach his work: above app.executions, whose revocation they call, while the users
(app.auth) and the datasets (app.catalog) they change sit below it."""
