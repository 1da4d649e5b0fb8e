"""The rules of the API, one module per resource. No HTTP, no SQL, never a commit: each public
function takes the request's ``UnitOfWork`` and the caller commits once."""
