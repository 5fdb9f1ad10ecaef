"""The web console at `/console`: a page and its ES modules, talking to the admin JSON API.

`sessions.py` keeps the server-side login sessions (no web framework); `origin.py` tells a
same-site browser request from a cross-site one; `routes.py` serves the page, logs in and out;
`headers.py` adds the security headers (strict CSP) to everything under `/console`. The page's
code lives in `static/` and is shipped inside the package: nothing is built or fetched at run time.
"""
