"""The HTTP edge: the app and its error mapping, routes, health; the only flask importer.

`web` routes a request, reads its body and maps any exception to the gateway's
error shape; `routes` is the route table; `health` and `document` are the routes
every function (or the history function) answers itself.
"""
