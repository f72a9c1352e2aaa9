"""Forms for the admin and the staff pages, one module per thing they edit."""
