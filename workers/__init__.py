"""The worker side: fetch a page, store it, follow its links."""
