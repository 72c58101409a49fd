"""The classifiers: urgency (urgent, normal, bulk) and customer account, from the user's mail.

``mail`` turns raw RFC 822 bytes into a :class:`~commsproxy.classifier.mail.Mail`; ``dataset``
reads mailboxes from disk or IMAP; ``labels`` derives urgency labels from the user's own replies;
``features`` and ``pipeline`` build the one scikit-learn Pipeline per task; ``train`` fits,
validates in time order and reports; ``predict`` classifies and explains.
"""
