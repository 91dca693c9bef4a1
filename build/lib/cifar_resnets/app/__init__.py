"""The Streamlit app: the user interface only; inference and run reading come from the packages below."""
