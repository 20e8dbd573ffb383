"""The web console: the gateway serves a browser front end for the user API at ``/``.

Owns the console's pages (server-rendered Jinja templates), its static assets (shipped inside the
package), the browser session cookie, CSRF tokens and the security headers. It adds no rules of its
own: every action calls the same identity and task services as the API, with the same
authorization. Scripts are one small module of our own that only enhances pages (live task status
and logs); every page works as plain HTML forms.
"""
